"""Snakemake job: train one offline run on its dataset (resuming it if a checkpoint exists), then write its
completion marker ``complete.json`` (atomically, only once the trainer reports the run finished), as train.py."""

import contextlib
import json
from pathlib import Path


def main(snakemake) -> None:
    from algorithms.common.runfiles import atomic_write_json
    from algorithms.common.configure import build_config
    from algorithms.common.run import train

    p = snakemake.params
    # progress on: stderr is the job log (not a terminal), so the trainer writes one plain line per phase change
    # and every MBDPO_PROGRESS_INTERVAL seconds (default 30) there instead of a tqdm bar (issue 18)
    overrides = {**p.overrides, "offline.dataset": str(snakemake.input.dataset), "seed": str(p.seed),
                 "name": p.name, "steps": str(p.steps), "results_dir": p.results_dir, "device": p.device,
                 "progress": "true", "threads": str(snakemake.threads)}
    Path(snakemake.log[0]).parent.mkdir(parents=True, exist_ok=True)
    with open(snakemake.log[0], "a") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        run_dir = train(build_config(p.algo, None, overrides))
    info = json.loads((Path(run_dir) / "run.json").read_text())
    key = f"{p.name}/{Path(run_dir).parent.name}/{p.seed}"
    if info.get("status") != "finished":
        raise SystemExit(f"run {key} ended with status {info.get('status')!r}; run the workflow again to resume")
    atomic_write_json(Path(snakemake.output[0]), {"run": key, "status": info["status"],
                                                  "step_unit": info.get("step_unit"),
                                                  "steps_done": info.get("steps_done"),
                                                  "config_hash": info.get("config_hash"),
                                                  "wall_time_s": info.get("wall_time_s")})


main(snakemake)  # noqa: F821 - defined by Snakemake's script directive
