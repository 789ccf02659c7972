"""The map of the code as a test: which room may import which, so that the arrows do not grow back.

Every import statement counts, at module level or inside a function (a lazy import is still an arrow), read from
the source with ``ast``: nothing is imported to find them. The rooms and their directions are the README's "Map of
the code": ``algorithms`` → ``offline`` → ``envs``; ``analysis`` reads files and imports no run-loop code;
``fileio`` is below everything; the run life cycle (``algorithms/common``) knows no algorithm.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("algorithms", "offline", "envs", "analysis", "fileio")
MAX_LINES = 400


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, root: Path = ROOT) -> set[str]:
    """Every module ``path`` imports (``from a.b import c`` counts ``a.b`` and, if it is a module, ``a.b.c``)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {name for name in found if name.split(".")[0] in PACKAGES and module_exists(name, root)}


def module_exists(name: str, root: Path = ROOT) -> bool:
    path = root.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def graph() -> dict[str, set[str]]:
    return {module_name(path): imports_of(path)
            for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))
            if "notebooks" not in path.parts}


def in_room(name: str, room: str) -> bool:
    return name == room or name.startswith(room + ".")


def arrows(source_room: str, target_room: str) -> list[str]:
    return sorted(f"{module} -> {target}" for module, targets in graph().items() if in_room(module, source_room)
                  for target in targets if in_room(target, target_room))


def test_the_parser_sees_function_level_and_relative_imports(tmp_path):
    """The checks below could pass by not seeing an import: a lazy and a relative one must be found."""
    for folder in ("offline", "algorithms", "algorithms/common"):
        (tmp_path / folder).mkdir(parents=True, exist_ok=True)
        (tmp_path / folder / "__init__.py").write_text("")
    (tmp_path / "offline" / "sibling.py").write_text("")
    (tmp_path / "algorithms" / "common" / "run.py").write_text("")
    probe = tmp_path / "offline" / "probe.py"
    probe.write_text("def f():\n    from algorithms.common.run import train\nfrom . import sibling\nimport numpy\n")
    assert imports_of(probe, tmp_path) == {"algorithms.common.run", "offline", "offline.sibling"}


@pytest.mark.parametrize("source,target", [
    ("offline", "algorithms"),         # the data layer knows no runs, agents or configs
    ("envs", "algorithms"), ("envs", "offline"), ("envs", "analysis"),
    ("analysis", "algorithms"),        # analysis reads run files, never the run loop
    ("analysis", "offline"),
    ("fileio", "algorithms"), ("fileio", "offline"), ("fileio", "envs"), ("fileio", "analysis"),
    ("algorithms.common", "algorithms.world_model"),  # the run loop asks the agent, it knows no algorithm
    ("algorithms.common", "algorithms.tdmpc2"), ("algorithms.common", "algorithms.mbdpo"),
    ("algorithms.common", "algorithms.sac"), ("algorithms.common", "algorithms.dreamerv3"),
    ("algorithms.common", "algorithms.commands"),  # commands use the life cycle, not the other way round
    ("algorithms.common", "algorithms.cli"),
])
def test_no_arrow_runs_the_wrong_way(source, target):
    assert arrows(source, target) == []


def test_no_import_cycle_in_the_run_life_cycle():
    """Among algorithms/common's modules (lazy imports included): a cycle is named by its modules."""
    edges = {module: {t for t in targets if in_room(t, "algorithms.common") and t != "algorithms.common"}
             for module, targets in graph().items() if in_room(module, "algorithms.common")}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)


def test_the_loops_are_siblings():
    """The online and the offline loop import the shared life cycle, never each other; train() picks them."""
    g = graph()
    assert "algorithms.common.offline_loop" not in g["algorithms.common.online_loop"]
    assert "algorithms.common.online_loop" not in g["algorithms.common.offline_loop"]
    for loop in ("online_loop", "offline_loop"):
        assert "algorithms.common.lifecycle" in g[f"algorithms.common.{loop}"]


@pytest.mark.parametrize("folder", ["algorithms/common", "algorithms/commands", "fileio"])
def test_modules_are_small_and_say_what_they_own(folder):
    for path in sorted((ROOT / folder).glob("*.py")):
        text = path.read_text()
        assert len(text.splitlines()) <= MAX_LINES, f"{path.relative_to(ROOT)} has grown past {MAX_LINES} lines"
        if text.strip():
            assert ast.get_docstring(ast.parse(text)), f"{path.relative_to(ROOT)} opens with no docstring"
