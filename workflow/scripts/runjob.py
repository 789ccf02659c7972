"""What a training job does for one run, shared by train.py (one run per job) and train_pack.py (k runs in one GPU
job): the trainer's overrides for the run, and its completion marker once run.json says finished."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def run_from_params(params) -> Any:
    """The plan's Run from a job's params (name, algo, task, seed, steps, overrides): Snakemake's params, or one
    member's dict of a pack's."""
    from plan import Run

    get = params.__getitem__ if isinstance(params, dict) else lambda key: getattr(params, key)
    return Run(get("name"), get("algo"), get("task"), int(get("seed")), get("steps"),
               tuple(sorted(dict(get("overrides")).items())))


def trainer_overrides(run, results_dir: str, device: str, threads: int) -> dict[str, str]:
    """The trainer's key=value overrides for ``run``: the run's own, then where and how it runs."""
    # progress on: stderr is the job log (not a terminal), so the trainer writes one plain line per phase change
    # and every MBDPO_PROGRESS_INTERVAL seconds (default 30) there instead of a tqdm bar (issue 18)
    overrides = {**run.overrides_dict(), "task": run.task, "seed": str(run.seed), "name": run.name,
                 "results_dir": results_dir, "device": device, "progress": "true", "threads": str(threads)}
    if run.steps:
        overrides["steps"] = str(run.steps)
    return overrides


def trainer_command(python: str, run, overrides: dict[str, str]) -> list[str]:
    """The trainer as a command line (another interpreter, or one process per run of a pack)."""
    return [python, "-m", "algorithms.cli", "train", "--algo", run.algo, *(f"{k}={v}" for k, v in overrides.items())]


def run_dir(run, results_dir: str) -> Path:
    return Path(results_dir) / "runs" / run.key


def run_info(folder: Path) -> dict[str, Any]:
    """The run's run.json, or {} when there is none (the trainer stopped before writing it)."""
    from algorithms.common.runfolder import read_run_info

    return read_run_info(Path(folder))


def write_marker(marker: Path, run, info: dict[str, Any]) -> None:
    """The run's complete.json (atomically), from its run.json of status finished."""
    from algorithms.common.runfiles import atomic_write_json

    atomic_write_json(Path(marker), {"run": run.key, "status": info["status"],
                                     "env_steps_done": info.get("env_steps_done"),
                                     "config_hash": info.get("config_hash"),
                                     "wall_time_s": info.get("wall_time_s")})
