"""The differential tests' table: after a run, every compared quantity with the largest |ours − released| it showed.

``.venv/bin/python -m pytest tests/differential`` prints it at the end (the table a reviewer asks for);
``MBDPO_FIDELITY_TABLE=path.md`` also writes it there as Markdown.
"""

from __future__ import annotations

import os
from pathlib import Path


def fidelity_table() -> list[tuple[str, float]]:
    from tests.differential import test_agents

    return sorted(test_agents.MAX_DIFFERENCES.items())


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    rows = fidelity_table()
    if not rows:
        return
    terminalreporter.section("differential table: max |ours − released| per compared quantity")
    width = max(len(name) for name, _ in rows)
    for name, diff in rows:
        terminalreporter.write_line(f"{name:<{width}}  {diff:.3g}")
    path = os.environ.get("MBDPO_FIDELITY_TABLE")
    if path:
        lines = ["| quantity | max abs difference |", "|---|---|", *[f"| {n} | {d:.3g} |" for n, d in rows]]
        Path(path).write_text("\n".join(lines) + "\n")
