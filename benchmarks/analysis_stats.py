"""Cost of the full grid's statistics: 4 algorithms × 114 tasks × 3 seeds, 2,000 bootstrap replicates per metric.

The grid is synthetic (``analysis.synthetic.curves``, 41 evaluations per run on each task's budget). Timed stages:
the per-domain and overall interval estimates (IQM, mean, median, optimality gap), performance profiles (101 τ),
probability of improvement of mbdpo over each baseline, the alignment on the common step grid and the IQM
sample-efficiency curves (every grid step, every domain). Goal: the whole under 60 s on 2 cores.

With ``--compare`` (default), the interval estimates are also computed with ``engine="rliable"``
(``rliable.library.get_interval_estimates``) on the same data, side by side: the ratio is rliable / ours.

    python benchmarks/analysis_stats.py
    python benchmarks/analysis_stats.py --reps 500 --tasks 20 --no-compare
"""

from __future__ import annotations

import argparse
import time
import warnings

from _common import emit, log

BENCHMARK = "analysis_stats"
GOAL_S = 60.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=2000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=0, help="first N registered tasks (default: all 114)")
    parser.add_argument("--points", type=int, default=41, help="evaluations per run")
    parser.add_argument("--compare", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=FutureWarning)  # arch's random_state deprecation, once per call

    from analysis import stats
    from analysis.load import align, values_at
    from analysis.synthetic import curves
    from envs.registry import TASKS

    tasks = list(TASKS)[: args.tasks or None]
    algorithms = ["mbdpo", "tdmpc2", "dreamerv3", "sac"]
    table = curves(algorithms, tasks, seeds=range(1, args.seeds + 1), points=args.points)
    table["domain"] = table["task"].map(lambda t: TASKS[t].domain)
    table["budget"] = table["task"].map(lambda t: TASKS[t].budget)
    context = {"task": f"{len(tasks)} tasks", "steps": args.reps, "repeats": 1, "device": "cpu", "torch_threads": 0,
               "algorithms": len(algorithms), "seeds": args.seeds, "reps": args.reps, "evaluations_per_run": args.points}
    log(f"grid: {len(algorithms)} algorithms × {len(tasks)} tasks × {args.seeds} seeds, {len(table)} evaluations")

    timings = {}
    t0 = time.perf_counter()
    values, _ = values_at(table)
    timings["values_at_s"] = time.perf_counter() - t0

    t = time.perf_counter()
    stats.interval_estimates(values, reps=args.reps)
    timings["interval_estimates_s"] = time.perf_counter() - t
    t = time.perf_counter()
    stats.performance_profiles(values, reps=args.reps)
    timings["performance_profiles_s"] = time.perf_counter() - t
    t = time.perf_counter()
    stats.probability_of_improvement(values, "mbdpo", reps=args.reps)
    timings["probability_of_improvement_s"] = time.perf_counter() - t
    t = time.perf_counter()
    aligned, _ = align(table)
    timings["align_s"] = time.perf_counter() - t
    t = time.perf_counter()
    stats.sample_efficiency_curves(aligned, reps=args.reps)
    timings["sample_efficiency_curves_s"] = time.perf_counter() - t
    total = time.perf_counter() - t0

    for metric, seconds in timings.items():
        emit(BENCHMARK, metric, seconds, "s", **context)
    emit(BENCHMARK, "total_s", total, "s", goal=GOAL_S, meets_goal=total <= GOAL_S, **context)
    log(f"total {total:.1f} s (goal {GOAL_S:.0f} s)")

    if args.compare:
        t = time.perf_counter()
        ours = stats.interval_estimates(values, reps=args.reps, engine="numpy")
        t_ours = time.perf_counter() - t
        t = time.perf_counter()
        ref = stats.interval_estimates(values, reps=args.reps, engine="rliable")
        t_ref = time.perf_counter() - t
        width_diff = ((ours["high"] - ours["low"]) - (ref["high"] - ref["low"])).abs().max()
        emit(BENCHMARK, "interval_estimates_rliable_over_numpy", t_ref / t_ours, "ratio", numpy_s=t_ours,
             rliable_s=t_ref, max_point_diff=float((ours["value"] - ref["value"]).abs().max()),
             max_ci_width_diff=float(width_diff), **context)


if __name__ == "__main__":
    main()
