"""Algorithm plug-ins: packages that add an algorithm through the entry-point group ``mbdpo_bench.algorithms``.

A plug-in's ``pyproject.toml`` names one module per algorithm::

    [project.entry-points."mbdpo_bench.algorithms"]
    myalgo = "my_package.myalgo"      # a module defining ``Config`` (a dataclass) and ``Agent``

This module owns finding them (lazily, once: :func:`sources`, cached until :func:`clear_cache`), loading and checking
one (:func:`load`: it imports, ``Config`` is a dataclass whose fields all have defaults, ``Agent`` is a concrete
subclass of ``algorithms.common.agent.Agent``) and turning every way that can go wrong into one line naming the
package: a :class:`PluginProblem` when listed, a ``ConfigError`` when the algorithm is asked for. The registry
(``registry.py``) joins them with the built-in algorithms; the contract a plug-in implements is algorithms/README.md.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import importlib.metadata
import inspect
import re
from dataclasses import dataclass
from types import ModuleType

GROUP = "mbdpo_bench.algorithms"
"""The entry-point group a plug-in package registers its algorithms under."""

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")
"""Algorithm names become a folder of every run path (``results/runs/{name}/...``) and a CLI word: no spaces,
no slashes."""


@dataclass(frozen=True)
class PluginSource:
    """One installed entry point of the group: the algorithm's name and where it comes from."""

    name: str
    module: str  # the entry point's value
    package: str  # the distribution that installs it
    version: str

    def where(self) -> str:
        return f"plug-in package {self.package} {self.version} (entry point {self.name} = {self.module!r})"


@dataclass(frozen=True)
class PluginProblem:
    """Why a plug-in cannot be used, as one line naming its package."""

    name: str
    line: str


def one_line(text: str) -> str:
    """A message on one line (an exception's text may span several)."""
    return " ".join(str(text).split())


def _installed() -> list[PluginSource]:
    found: dict[tuple[str, str, str], PluginSource] = {}
    for ep in importlib.metadata.entry_points(group=GROUP):
        dist = getattr(ep, "dist", None)
        package = dist.metadata["Name"] if dist is not None else "?"
        version = dist.version if dist is not None else "?"
        # the same distribution seen twice on sys.path (e.g. a --target folder also on PYTHONPATH) is one plug-in
        found.setdefault((ep.name, ep.value, package), PluginSource(ep.name, ep.value, package, version))
    return sorted(found.values(), key=lambda s: (s.name, s.package))


@functools.cache
def sources(builtin: frozenset[str]) -> tuple[dict[str, PluginSource], tuple[PluginProblem, ...]]:
    """The usable-looking plug-ins by name, and the problems found without importing anything: a name that is not
    a valid algorithm name, clashes with a built-in algorithm, is claimed by two packages, or an entry point that
    names an object instead of a module."""
    by_name: dict[str, list[PluginSource]] = {}
    problems: list[PluginProblem] = []
    for source in _installed():
        by_name.setdefault(source.name, []).append(source)
    usable: dict[str, PluginSource] = {}
    for name, claims in by_name.items():
        if len(claims) > 1:
            packages = " and ".join(f"{s.package} {s.version}" for s in claims)
            problems.append(PluginProblem(name, f"algorithm {name!r} is provided by two plug-in packages, {packages}; "
                                                "uninstall one or rename its entry point"))
            continue
        source = claims[0]
        if name in builtin:
            problems.append(PluginProblem(name, f"{source.where()}: the name {name!r} clashes with the built-in "
                                                f"algorithm {name!r}; rename the entry point in that package's "
                                                "pyproject.toml (or uninstall it)"))
        elif not NAME_PATTERN.fullmatch(name):
            problems.append(PluginProblem(name, f"{source.where()}: {name!r} is not a valid algorithm name (letters, "
                                                "digits and _ . + - only, no spaces: it names the runs' folder)"))
        elif ":" in source.module:
            problems.append(PluginProblem(name, f"{source.where()}: the entry point must name a module "
                                                "(\"package.module\") that defines Config and Agent, not an object"))
        else:
            usable[name] = source
    return usable, tuple(problems)


def clear_cache() -> None:
    """Forget what was found and loaded (e.g. after installing a plug-in into a folder put on ``sys.path``)."""
    importlib.invalidate_caches()  # importlib.metadata caches the listing of each path entry
    sources.cache_clear()
    load.cache_clear()


def summary_of(module: ModuleType) -> str:
    """The first line of the module's docstring (else of its Agent's)."""
    for doc in (module.__doc__, getattr(getattr(module, "Agent", None), "__doc__", None)):
        if doc and doc.strip():
            return one_line(doc.strip().splitlines()[0])
    return ""


@functools.cache
def load(source: PluginSource) -> ModuleType:
    """Import the plug-in's module and check it; ConfigError naming the package if it fails to import or lacks
    a usable ``Config`` or ``Agent``."""
    from algorithms.common.agent import Agent as AgentBase
    from algorithms.common.config import ConfigError

    try:
        module = importlib.import_module(source.module)
    except BaseException as err:  # noqa: BLE001 — whatever its import raises (even SystemExit), one line
        if isinstance(err, KeyboardInterrupt):
            raise
        raise ConfigError(f"{source.where()} fails to import: {type(err).__name__}: {one_line(err)}") from None
    config = getattr(module, "Config", None)
    agent = getattr(module, "Agent", None)
    if not (isinstance(config, type) and dataclasses.is_dataclass(config)):
        raise ConfigError(f"{source.where()}: module {source.module} has no Config dataclass (the algorithm's "
                          "hyper-parameters; algorithms/README.md)")
    if not (isinstance(agent, type) and issubclass(agent, AgentBase)):
        raise ConfigError(f"{source.where()}: module {source.module} has no Agent class derived from "
                          "algorithms.common.agent.Agent")
    if inspect.isabstract(agent):
        missing = ", ".join(sorted(agent.__abstractmethods__))
        raise ConfigError(f"{source.where()}: its Agent leaves {missing} unimplemented")
    without_default = [f.name for f in dataclasses.fields(config)
                       if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if without_default:
        raise ConfigError(f"{source.where()}: Config field(s) {', '.join(without_default)} have no default (the "
                          "harness builds Config() and then applies agent.<key>=value overrides)")
    return module
