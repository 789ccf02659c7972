"""Snakemake job: train one run (resuming it if a checkpoint exists), then write its completion marker.

The marker ``complete.json`` is written atomically and only once the trainer reports the run finished, so it is
the one output Snakemake tracks; the run folder itself (CSV logs, checkpoints) is never an output and is never
deleted by Snakemake when a job fails or is killed — the next attempt resumes from the newest checkpoint.
"""

import contextlib
import json
import subprocess
import sys
from pathlib import Path


def main(snakemake) -> None:
    sys.path.insert(0, str(Path(snakemake.scriptdir)))
    from plan import MANISKILL2_TASKS, Run, blocked

    p = snakemake.params
    run = Run(p.name, p.algo, p.task, int(p.seed), p.steps, tuple(sorted(p.overrides.items())))
    other_python = p.maniskill2_python if run.task in MANISKILL2_TASKS else None
    reason = blocked(run, other_python)
    if reason:  # before anything starts: no run folder, one clear message
        raise SystemExit(f"cannot run {run.key} here: {reason}")
    Path(snakemake.log[0]).parent.mkdir(parents=True, exist_ok=True)
    with open(snakemake.log[0], "a") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        train_run(run, p, snakemake, other_python, log)


def train_run(run, p, snakemake, other_python, log) -> None:
    from algorithms.common.runfiles import atomic_write_json

    # progress on: stderr is the job log (not a terminal), so the trainer writes one plain line per phase change
    # and every MBDPO_PROGRESS_INTERVAL seconds (default 30) there instead of a tqdm bar (issue 18)
    overrides = {**run.overrides_dict(), "task": run.task, "seed": str(run.seed), "name": run.name,
                 "results_dir": p.results_dir, "device": p.device, "progress": "true",
                 "threads": str(snakemake.threads)}
    if run.steps:
        overrides["steps"] = str(run.steps)
    if other_python and Path(other_python).resolve() != Path(sys.executable).resolve():
        # the ManiSkill2 environment (numpy < 1.24): the same trainer through its own interpreter
        cmd = [other_python, "-m", "algorithms.cli", "train", "--algo", run.algo,
               *(f"{k}={v}" for k, v in overrides.items())]
        code = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, check=False).returncode
        if code != 0:
            raise SystemExit(f"run {run.key}: the trainer under {other_python} exited with {code} (see the log)")
        run_dir = Path(p.results_dir) / "runs" / run.key
    else:
        from algorithms.common.trainer import build_config, train

        run_dir = train(build_config(run.algo, None, overrides))
    info = json.loads((Path(run_dir) / "run.json").read_text())
    if info.get("status") != "finished":
        raise SystemExit(f"run {run.key} ended with status {info.get('status')!r}; run the workflow again to resume")
    atomic_write_json(Path(snakemake.output[0]), {"run": run.key, "status": info["status"],
                                                  "env_steps_done": info.get("env_steps_done"),
                                                  "config_hash": info.get("config_hash"),
                                                  "wall_time_s": info.get("wall_time_s")})


main(snakemake)  # noqa: F821 - defined by Snakemake's script directive
