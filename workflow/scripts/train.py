"""Snakemake job: train one run (resuming it if a checkpoint exists), then write its completion marker.

The marker ``complete.json`` is written atomically and only once the trainer reports the run finished, so it is
the one output Snakemake tracks; the run folder itself (CSV logs, checkpoints) is never an output and is never
deleted by Snakemake when a job fails or is killed — the next attempt resumes from the newest checkpoint.
"""

import contextlib
import subprocess
import sys
from pathlib import Path


def main(snakemake) -> None:
    sys.path.insert(0, str(Path(snakemake.scriptdir)))
    from plan import MANISKILL2_TASKS, blocked
    from runjob import run_from_params

    p = snakemake.params
    run = run_from_params(p)
    other_python = p.maniskill2_python if run.task in MANISKILL2_TASKS else None
    reason = blocked(run, other_python)
    if reason:  # before anything starts: no run folder, one clear message
        raise SystemExit(f"cannot run {run.key} here: {reason}")
    Path(snakemake.log[0]).parent.mkdir(parents=True, exist_ok=True)
    with open(snakemake.log[0], "a") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        train_run(run, p, snakemake, other_python, log)


def train_run(run, p, snakemake, other_python, log) -> None:
    import runjob

    overrides = runjob.trainer_overrides(run, p.results_dir, p.device, snakemake.threads)
    if other_python and Path(other_python).resolve() != Path(sys.executable).resolve():
        # the ManiSkill2 environment (numpy < 1.24): the same trainer through its own interpreter
        cmd = runjob.trainer_command(other_python, run, overrides)
        code = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, check=False).returncode
        if code != 0:
            raise SystemExit(f"run {run.key}: the trainer under {other_python} exited with {code} (see the log)")
        run_dir = runjob.run_dir(run, p.results_dir)
    else:
        from algorithms.common.configure import build_config
        from algorithms.common.run import train

        run_dir = train(build_config(run.algo, None, overrides))
    info = runjob.run_info(run_dir)
    if info.get("status") != "finished":
        raise SystemExit(f"run {run.key} ended with status {info.get('status')!r}; run the workflow again to resume")
    runjob.write_marker(Path(snakemake.output[0]), run, info)


main(snakemake)  # noqa: F821 - defined by Snakemake's script directive
