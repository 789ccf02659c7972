"""Runs packed on one device: summed env steps/s of k concurrent runs, for k = 1, 2, 4, 8 (issue 17, item 4).

For each k in ``--k-values`` it starts k training processes at once (``python -m algorithms.cli train``, seeds
1..k, the same algorithm, preset and task, each in its own temporary results folder, ``--threads`` torch threads
each) on ``--device``, as a ``runs_per_gpu: k`` job of the workflow does, and waits for all. Each run's rate is the
median ``env_steps_per_s`` of its train.csv rows after seeding (start-up, seeding and pre-training excluded).

Figures (one JSON line each): ``summed_env_steps_per_s`` per k (the sum of the k runs' rates) with ``per_run`` and
``elapsed_s`` (wall time of the whole batch, start-up included), and ``packing_gain`` per k = summed rate / the
k = 1 rate, with ``"goal": 4`` at k = 8 on a GPU (the issue's target; on a 2-core CPU the runs only share the
cores, so expect ~1).

    PYTHONPATH=. python benchmarks/packing.py --device cuda --algo mbdpo --size 1.7M --steps 20000
    PYTHONPATH=. python benchmarks/packing.py --algo sac --steps 3000 --k-values 1,2   # CPU smoke
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import csv_list, emit, log

BENCHMARK = "packing"
ROOT = Path(__file__).resolve().parents[1]
GOAL_K, GOAL_GAIN = 8, 4.0


def run_rate(run_dir: Path, seed_steps: int) -> float:
    """Median env steps/s of a finished run's train.csv rows after seeding."""
    path = run_dir / "train.csv"
    if not path.exists():
        raise SystemExit(f"{run_dir} has no train.csv: the run failed (see its log beside it)")
    rows = [r for r in csv.DictReader(path.open()) if r.get("env_steps_per_s") and int(r["step"]) > seed_steps]
    if not rows:
        raise SystemExit(f"{path} has no rows after seeding (step > {seed_steps}): raise --steps")
    return statistics.median(float(r["env_steps_per_s"]) for r in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algo", default="tdmpc2")
    parser.add_argument("--size", default="1.7M", help="agent.model_size (ignored for sac)")
    parser.add_argument("--task", default="cartpole-balance")
    parser.add_argument("--steps", type=int, default=6000, help="env steps per run")
    parser.add_argument("--seed-steps", type=int, default=1000)
    parser.add_argument("--log-every", type=int, default=500)
    parser.add_argument("--k-values", default="1,2,4,8")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--overrides", default="", help="more key=value run overrides, comma separated")
    args = parser.parse_args()

    overrides = [f"seed_steps={args.seed_steps}", f"log_every={args.log_every}", f"eval_every={args.steps}",
                 "eval_episodes=1", f"checkpoint_every={args.steps}", "progress=false", f"device={args.device}",
                 f"threads={args.threads}", *csv_list(args.overrides)]
    if args.algo != "sac":
        overrides.append(f"model_size={args.size}")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    summed: dict[int, float] = {}
    device = args.device
    for k in [int(v) for v in csv_list(args.k_values)]:
        with tempfile.TemporaryDirectory() as tmp:
            procs = []
            tic = time.perf_counter()
            for seed in range(1, k + 1):
                cmd = [sys.executable, "-m", "algorithms.cli", "train", "--algo", args.algo, "--task", args.task,
                       "--seed", str(seed), "--steps", str(args.steps), "--results-dir", tmp, *overrides]
                logfile = open(Path(tmp) / f"seed{seed}.log", "w")
                procs.append((subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=logfile, stderr=subprocess.STDOUT),
                              logfile))
            for proc, logfile in procs:
                proc.wait()
                logfile.close()
            elapsed = time.perf_counter() - tic
            failed = [seed for seed, (proc, _) in enumerate(procs, 1) if proc.returncode != 0]
            if failed:
                tail = (Path(tmp) / f"seed{failed[0]}.log").read_text()[-2000:]
                raise SystemExit(f"k={k}: run(s) with seed {failed} failed; seed {failed[0]}'s log ends:\n{tail}")
            runs = sorted((Path(tmp) / "runs" / args.algo).glob("*/*"))
            rates = [run_rate(run, args.seed_steps) for run in runs]
            if len(rates) != k:
                raise SystemExit(f"k={k}: found {len(rates)} run folders, expected {k}")
            device = json.loads((runs[0] / "run.json").read_text()).get("device", device)
        summed[k] = sum(rates)
        log(f"k={k}: {summed[k]:.1f} env steps/s summed ({', '.join(f'{r:.1f}' for r in rates)}), {elapsed:.0f} s")
        context = dict(task=args.task, algo=args.algo, model_size=None if args.algo == "sac" else args.size,
                       steps=args.steps, repeats=1,
                       device=device, torch_threads=args.threads, runs=k)
        emit(BENCHMARK, "summed_env_steps_per_s", summed[k], "env steps/s", per_run=[round(r, 2) for r in rates],
             elapsed_s=round(elapsed, 1), **context)
        if 1 in summed:
            gain = summed[k] / summed[1]
            goal = dict(goal=GOAL_GAIN, meets_goal=gain >= GOAL_GAIN) if k == GOAL_K else {}
            emit(BENCHMARK, "packing_gain", gain, "summed(k)/summed(1)", **goal, **context)


if __name__ == "__main__":
    main()
