"""Synthetic but well-formed inputs for the analysis: released-curve folders and run directories.

For benchmarks, notebooks and tests, where real curves cannot be shipped (the released ones are not ours to
commit) and real runs take hours. Curves rise along a saturating exponential towards a per-(algorithm, task)
level with seed noise, so the statistics have something to find; nothing here pretends to be a result.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from analysis.load import task_spec
from analysis.units import AGENT, resolve_unit
from envs.registry import TaskSpec

# Final normalised score levels per algorithm (0-100), loosely ordered like the paper's figures.
DEFAULT_LEVELS = {"mbdpo": 90.0, "tdmpc2": 85.0, "dreamerv3": 60.0, "sac": 50.0, "tdmpc": 70.0}


def _spec(task: str, specs: Mapping[str, TaskSpec] | None = None) -> TaskSpec:
    """``task``'s spec: from ``specs`` (a task plug-in's, which need not be installed), else the registry's."""
    spec = (specs or {}).get(task) or task_spec(task)
    if spec is None:
        raise KeyError(f"synthetic: task {task!r} is not registered; pass its TaskSpec in specs")
    return spec


def _curve(rng: np.random.Generator, steps: np.ndarray, level: float, budget: int) -> np.ndarray:
    rate = rng.uniform(2.0, 6.0) / max(budget, 1)
    noise = rng.normal(0.0, 4.0, size=len(steps))
    return np.clip(level * (1.0 - np.exp(-rate * steps)) + noise, 0.0, 100.0)


def curves(algorithms: Iterable[str], tasks: Iterable[str], seeds: Iterable[int] = (1, 2, 3),
           points: int = 11, seed: int = 0, levels: dict[str, float] | None = None,
           specs: Mapping[str, TaskSpec] | None = None) -> pd.DataFrame:
    """A tidy table ``algorithm, task, seed, step, score`` of synthetic learning curves on each task's budget
    (``specs``: tasks outside the registry, e.g. a task plug-in's)."""
    rng = np.random.default_rng(seed)
    levels = {**DEFAULT_LEVELS, **(levels or {})}
    rows = []
    for alg in algorithms:
        for task in tasks:
            spec = _spec(task, specs)
            level = float(np.clip(levels.get(alg, 60.0) + rng.normal(0, 10), 0, 100))
            steps = np.linspace(0, spec.budget, points).astype(np.int64)
            for s in seeds:
                rows += [{"algorithm": alg, "task": task, "seed": s, "step": int(st), "score": float(v)}
                         for st, v in zip(steps, _curve(rng, steps, level, spec.budget))]
    return pd.DataFrame(rows)


def write_published(root: str | Path, table: pd.DataFrame, step_units: Mapping[str, str] | None = None) -> Path:
    """Write ``table`` (from :func:`curves`, steps in env steps) in the released format: ``root/{alg}[-pixels]/{task}.csv``.

    DMControl tasks get ``step,reward,seed`` with returns (score × 10); success tasks ``step,success,seed`` in 0-1
    (the TD-MPC2-era convention), except for the ``mbdpo`` folder, which writes success × 100 under ``reward``.
    Each folder's ``step`` is written in its step unit (``step_units`` {folder: unit} over the declared
    :data:`analysis.units.PUBLISHED_STEP_UNITS`): agent-step folders (mbdpo, as released) get env step / action
    repeat, so that loading them back gives ``table``'s env steps.
    """
    root = Path(root)
    for (alg, task), g in table.groupby(["algorithm", "task"]):
        spec = _spec(task)
        folder = root / (f"{alg}-pixels" if spec.obs == "rgb" else alg)
        name = spec.base if spec.obs == "rgb" and spec.base else task
        folder.mkdir(parents=True, exist_ok=True)
        unit, _ = resolve_unit(folder.name, step_units)
        step = g["step"] // spec.action_repeat if unit == AGENT else g["step"]
        if spec.metric == "return":
            out = pd.DataFrame({"step": step, "reward": g["score"] * 10.0, "seed": g["seed"]})
        elif alg == "mbdpo":
            out = pd.DataFrame({"step": step, "reward": g["score"].round(0), "seed": g["seed"]})
        else:
            out = pd.DataFrame({"step": step, "success": (g["score"] / 100.0).round(2), "seed": g["seed"]})
        if spec.suite == "myosuite" and alg != "mbdpo":
            name = name.replace("myo-", "myo-hand-", 1)
        out.to_csv(folder / f"{name}.csv", index=False)
    return root


def write_runs(root: str | Path, table: pd.DataFrame, agent: dict | None = None, train_rows: int = 10,
               name_of: dict[str, str] | None = None, specs: Mapping[str, TaskSpec] | None = None) -> Path:
    """Write ``table`` as run directories ``root/{name}/{task}/{seed}/`` (run.json, config.yaml, eval.csv,
    train.csv with timing and the cross-TD error / policy drift diagnostics), as the trainer would (run.json with
    the task's ``suite`` and ``domain``; ``specs``: tasks outside the registry, e.g. a task plug-in's)."""
    root = Path(root)
    rng = np.random.default_rng(1)
    for (alg, task, seed), g in table.groupby(["algorithm", "task", "seed"]):
        spec = _spec(task, specs)
        name = (name_of or {}).get(alg, alg)
        run = root / name / task / str(seed)
        run.mkdir(parents=True, exist_ok=True)
        steps = g["step"].to_numpy()
        config = {"format_version": 2, "algo": alg, "task": task, "seed": int(seed), "steps": int(steps.max()),
                  "agent": dict(agent or {"model_size": "1.7M"})}
        (run / "config.yaml").write_text(yaml.safe_dump(config))
        info = {"format_version": 2, "status": "finished", "algo": alg, "name": name, "task": task,
                "suite": spec.suite, "domain": spec.domain, "seed": int(seed),
                "config_hash": f"{hash((name, task)) & 0xFFFFFFFFFFFF:012x}",
                "env_steps_done": int(steps.max()), "total_env_steps": int(steps.max()),
                "wall_time_s": float(steps.max()) * rng.uniform(0.005, 0.02)}
        (run / "run.json").write_text(json.dumps(info))
        score = g["score"].to_numpy()
        success = ["" if spec.metric == "return" else f"{v / 100:.3f}" for v in score]
        ret = score * 10.0 if spec.metric == "return" else score
        pd.DataFrame({"step": steps, "episode_return": ret, "episode_return_std": 1.0, "episode_return_min": ret,
                      "episode_return_max": ret, "success": success, "episode_length": spec.episode_length,
                      "episodes": 10}).to_csv(run / "eval.csv", index=False)
        tsteps = np.linspace(steps.max() / train_rows, steps.max(), train_rows).astype(np.int64)
        decay = np.exp(-3.0 * tsteps / max(steps.max(), 1))
        pd.DataFrame({"step": tsteps, "updates": tsteps, "episodes": tsteps // 1000,
                      "wall_time_s": tsteps * 0.01, "env_steps_per_s": 100.0,
                      "update_ms": rng.uniform(5, 15, train_rows), "act_ms": rng.uniform(1, 5, train_rows),
                      "cross_td_error": decay * rng.uniform(0.5, 1.5) + 0.05,
                      "behaviour_drift": decay * rng.uniform(1.0, 3.0)}).to_csv(run / "train.csv", index=False)
    return root
