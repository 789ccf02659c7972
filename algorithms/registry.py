"""Algorithm name -> its hyper-parameter dataclass and agent class: the built-in algorithms and installed plug-ins.

A built-in algorithm joins the harness (CLI, run life cycle, workflow) by adding one entry to :data:`ALGORITHMS`;
an algorithm of another package joins it by installing a plug-in (entry-point group ``mbdpo_bench.algorithms``,
``plugins.py``; the contract: algorithms/README.md). :func:`get_algorithm` finds both; :func:`list_algorithms`
lists both, with one line per plug-in that cannot be used. Plug-ins are found on first use, not at import.
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass
from types import ModuleType

from algorithms import plugins

BUILTIN_PACKAGE = "mbdpo-bench"
"""The ``package`` of the built-in algorithms (the harness's own distribution)."""


@dataclass(frozen=True)
class AlgorithmEntry:
    name: str
    module: str  # defines ``Config`` (hyper-parameters) and ``Agent``
    summary: str
    package: str = BUILTIN_PACKAGE  # the distribution that provides it
    version: str | None = None  # a plug-in's; None for a built-in (the harness's version)

    @property
    def builtin(self) -> bool:
        return self.package == BUILTIN_PACKAGE

    def load(self) -> ModuleType:
        return importlib.import_module(self.module)


ALGORITHMS: dict[str, AlgorithmEntry] = {
    entry.name: entry for entry in (
        AlgorithmEntry("sac", "algorithms.sac", "Soft actor-critic: twin Q, tanh-Gaussian actor, auto entropy"),
        AlgorithmEntry("tdmpc2", "algorithms.tdmpc2", "TD-MPC2: latent world model + MPPI planning"),
        AlgorithmEntry("mbdpo", "algorithms.mbdpo", "MBDPO: world model + energy + Monte Carlo diffusion planner"),
        AlgorithmEntry("dreamerv3", "algorithms.dreamerv3", "DreamerV3: RSSM world model, actor-critic in imagination"),
    )
}
"""The built-in algorithms (what the paper's grid runs). Installed plug-ins are not in it: :func:`algorithm_names`,
:func:`get_algorithm` and :func:`list_algorithms` include them."""


def _plugin_sources() -> tuple[dict[str, plugins.PluginSource], tuple[plugins.PluginProblem, ...]]:
    return plugins.sources(frozenset(ALGORITHMS))


def algorithm_names() -> list[str]:
    """Built-in algorithms, then installed plug-ins (including ones that turn out broken when loaded)."""
    usable, _ = _plugin_sources()
    return [*ALGORITHMS, *(name for name in usable if name not in ALGORITHMS)]


def get_algorithm(name: str) -> AlgorithmEntry:
    """The algorithm called ``name``, built in or a plug-in (imported and checked here); ConfigError if unknown, or
    naming the package if a plug-in of that name cannot be used (it fails to import, lacks Config or Agent, or
    its name clashes with a built-in one or another plug-in's: then neither is used, the name is ambiguous)."""
    from algorithms.common.config import ConfigError

    usable, problems = _plugin_sources()
    for problem in problems:
        if problem.name == name:
            raise ConfigError(problem.line)
    if name in ALGORITHMS:
        return ALGORITHMS[name]
    source = usable.get(name)
    if source is None:
        known = algorithm_names()
        near = difflib.get_close_matches(name, known, n=3, cutoff=0.4)
        hint = f"; did you mean {', '.join(near)}?" if near else ""
        raise ConfigError(f"unknown algorithm {name!r}{hint} (registered: {', '.join(known)}; plug-ins: "
                          "`mbdpo-bench algorithms`)")
    module = plugins.load(source)  # ConfigError naming the package
    return AlgorithmEntry(name, source.module, plugins.summary_of(module), source.package, source.version)


def supports_offline(entry: AlgorithmEntry) -> bool:
    """Whether the algorithm trains offline (multi-task): its Agent has ``set_task`` (algorithms/README.md)."""
    return hasattr(entry.load().Agent, "set_task")


def list_algorithms() -> tuple[list[AlgorithmEntry], list[str]]:
    """Every usable algorithm (built-ins first), and one line per installed plug-in that cannot be used."""
    usable, problems = _plugin_sources()
    entries = list(ALGORITHMS.values())
    lines = [problem.line for problem in problems]
    from algorithms.common.config import ConfigError

    for name in usable:
        try:
            entries.append(get_algorithm(name))
        except ConfigError as err:
            lines.append(str(err))
    return entries, lines


def clear_plugin_cache() -> None:
    """Find plug-ins (algorithms and tasks) again on next use, after one was installed or removed in this process."""
    from envs.registry import clear_task_plugin_cache

    plugins.clear_cache()
    clear_task_plugin_cache()
