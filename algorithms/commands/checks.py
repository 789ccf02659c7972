"""Learning checks: a run config plus a pass criterion, one YAML file each in config/checks/.

``mbdpo-bench validate NAME`` trains (or resumes, or reuses a finished run) and judges its eval.csv; the
slow tests and the workflow's ``validate`` targets call the same function.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from algorithms.common.config import ConfigError, apply_overrides, apply_values, load_yaml
from algorithms.common.configure import build_config
from algorithms.common.run import train

CHECKS_DIR = Path(__file__).resolve().parents[2] / "config" / "checks"


@dataclass
class CheckResult:
    name: str
    passed: bool
    criterion: str
    returns: dict[int, float]
    run_dir: str
    wall_time_s: float | None

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def available_checks() -> list[str]:
    return sorted(p.stem for p in CHECKS_DIR.glob("*.yaml"))


def load_check(name: str, overrides: dict[str, str] | None = None):
    path = CHECKS_DIR / f"{name}.yaml"
    if not path.exists():
        raise ConfigError(f"unknown learning check {name!r}; valid: {', '.join(available_checks())}")
    values = load_yaml(path)
    criterion = values.pop("check")
    cfg = build_config(values.pop("algo"))
    apply_values(cfg, values)
    apply_overrides(cfg, overrides or {})
    cfg.name = cfg.name or f"check-{name}"
    return cfg, criterion


def judge(name: str, eval_csv: Path, criterion: dict[str, Any]) -> CheckResult:
    """Pass when an evaluation at or before ``by_step`` reaches ``min_return`` (with ``at_step``: the
    evaluation at ``by_step`` itself must)."""
    rows = list(csv.DictReader(open(eval_csv)))
    returns = {int(r["step"]): float(r["episode_return"]) for r in rows}
    by, threshold = int(criterion["by_step"]), float(criterion["min_return"])
    if criterion.get("at_step"):
        passed = returns.get(by, float("-inf")) >= threshold
        text = f"eval return at step {by} >= {threshold}"
    else:
        passed = any(v >= threshold for s, v in returns.items() if s <= by)
        text = f"eval return >= {threshold} by step {by}"
    import json

    info = json.loads((eval_csv.parent / "run.json").read_text())
    return CheckResult(name, passed, text, returns, str(eval_csv.parent), info.get("wall_time_s"))


def run_check(name: str, results_dir: str | None = None, overrides: dict[str, str] | None = None) -> CheckResult:
    cfg, criterion = load_check(name, overrides)
    if results_dir:
        cfg.results_dir = results_dir
    run_dir = train(cfg)
    return judge(name, run_dir / "eval.csv", criterion)
