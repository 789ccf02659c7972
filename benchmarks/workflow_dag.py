"""Time for Snakemake to plan the paper's grid: `snakemake -n --configfile config/paper.yaml` (goal < 10 s).

The dry run parses the workflow, validates the config against its schema, expands and checks the plan (every run's
task and algorithm, every distinct override set built into a full run config), checks which runs this machine
cannot run, and builds the DAG of ≈1,370 jobs. Timed end to end as a subprocess (interpreter start included),
`--repeats` times; the ablation config's DAG is timed beside it.

    python benchmarks/workflow_dag.py
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import emit, log, median

BENCHMARK = "workflow_dag"
GOAL_S = 10.0
ROOT = Path(__file__).resolve().parents[1]


def dry_run(configfile: str, workdir: str) -> tuple[float, int]:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "-q", "rules", "-s",
                           str(ROOT / "workflow" / "Snakefile"), "-d", workdir, "--cores", "1", "--configfile",
                           str(ROOT / configfile)], capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"dry run of {configfile} failed:\n{proc.stderr[-2000:]}")
    match = re.search(r"^total\s+(\d+)", proc.stdout + proc.stderr, re.MULTILINE)
    return seconds, int(match.group(1)) if match else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--configs", default="config/paper.yaml,config/ablations.yaml")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        for configfile in [c for c in args.configs.split(",") if c]:
            times, jobs = [], 0
            for i in range(args.repeats):
                seconds, jobs = dry_run(configfile, workdir)
                times.append(seconds)
                log(f"{configfile}: {seconds:.2f} s, {jobs} jobs (repeat {i + 1})")
            value = median(times)
            emit(BENCHMARK, "dry_run_s", value, "s", task=configfile, steps=jobs, repeats=args.repeats,
                 device="cpu", torch_threads=0, jobs=jobs, times_s=[round(t, 3) for t in times], goal=GOAL_S,
                 meets_goal=value <= GOAL_S)


if __name__ == "__main__":
    main()
