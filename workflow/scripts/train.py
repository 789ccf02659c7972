"""Snakemake job: train one run (resuming it if a checkpoint exists), then write its completion marker.

The marker ``complete.json`` is written atomically and only once the trainer reports the run finished, so it is
the one output Snakemake tracks; the run folder itself (CSV logs, checkpoints) is never an output and is never
deleted by Snakemake when a job fails or is killed — the next attempt resumes from the newest checkpoint.
"""

import contextlib
import json
import sys
from pathlib import Path


def main(snakemake) -> None:
    sys.path.insert(0, str(Path(snakemake.scriptdir)))
    from plan import Run, blocked

    p = snakemake.params
    run = Run(p.name, p.algo, p.task, int(p.seed), p.steps, tuple(sorted(p.overrides.items())))
    reason = blocked(run)
    if reason:  # before anything starts: no run folder, one clear message
        raise SystemExit(f"cannot run {run.key} here: {reason}")
    Path(snakemake.log[0]).parent.mkdir(parents=True, exist_ok=True)
    with open(snakemake.log[0], "a") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        train_run(run, p, snakemake)


def train_run(run, p, snakemake) -> None:
    from algorithms.common.runfiles import atomic_write_json
    from algorithms.common.trainer import build_config, train

    overrides = {**run.overrides_dict(), "task": run.task, "seed": str(run.seed), "name": run.name,
                 "results_dir": p.results_dir, "device": p.device, "progress": "false",
                 "threads": str(snakemake.threads)}
    if run.steps:
        overrides["steps"] = str(run.steps)
    run_dir = train(build_config(run.algo, None, overrides))
    info = json.loads((Path(run_dir) / "run.json").read_text())
    if info.get("status") != "finished":
        raise SystemExit(f"run {run.key} ended with status {info.get('status')!r}; run the workflow again to resume")
    atomic_write_json(Path(snakemake.output[0]), {"run": run.key, "status": info["status"],
                                                  "env_steps_done": info.get("env_steps_done"),
                                                  "config_hash": info.get("config_hash"),
                                                  "wall_time_s": info.get("wall_time_s")})


main(snakemake)  # noqa: F821 - defined by Snakemake's script directive
