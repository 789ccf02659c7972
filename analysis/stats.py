"""Interval estimates with rliable (Agarwal et al., 2021, "Deep RL at the Edge of the Statistical Precipice").

Inputs are tidy tables of one normalised score per run (``algorithm, task, seed, score`` — from
:func:`analysis.load.values_at`) or per run and step (from :func:`analysis.load.align`). Scores are 0-100, so the
optimality gap is taken against 100. Every bootstrap is rliable's stratified bootstrap over runs within tasks,
seeded for reproducibility; intervals are percentile 95 % CIs unless asked otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial

import numpy as np
import pandas as pd
from rliable import library as rly
from rliable import metrics as rl_metrics
from scipy import stats as sps

SCORE_MAX = 100.0
METRICS: dict[str, Callable[[np.ndarray], float]] = {
    "iqm": rl_metrics.aggregate_iqm,
    "mean": rl_metrics.aggregate_mean,
    "median": rl_metrics.aggregate_median,
    "optimality_gap": partial(rl_metrics.aggregate_optimality_gap, gamma=SCORE_MAX),
}
ALL_DOMAINS = "All"
ENGINES = ("numpy", "rliable")


def iqm(scores: np.ndarray) -> float:
    """Interquartile mean: the mean of the middle 50 % of all run × task scores (25 % trimmed at each end)."""
    return float(sps.trim_mean(np.asarray(scores, dtype=float).reshape(-1), proportiontocut=0.25))


# Vectorised twins of rliable's aggregates: each maps a (reps, runs, tasks) stack to (reps,) in one call, so that
# 2,000 bootstrap replicates cost one array operation instead of 2,000 Python calls. Tests pin them to rliable's.
_VECTOR_METRICS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "iqm": lambda x: sps.trim_mean(x.reshape(len(x), -1), proportiontocut=0.25, axis=1),
    "mean": lambda x: x.reshape(len(x), -1).mean(axis=1),
    "median": lambda x: np.median(x.mean(axis=1), axis=1),  # rliable: median over tasks of per-task means
    "optimality_gap": lambda x: SCORE_MAX - np.minimum(x, SCORE_MAX).reshape(len(x), -1).mean(axis=1),
}


def score_matrix(values: pd.DataFrame, tasks: Iterable[str] | None = None) -> tuple[np.ndarray, list[str], list[str]]:
    """(runs × tasks matrix, task order, notes) of one algorithm's per-run scores.

    rliable's statistics need the same number of runs on every task. Where tasks have unequal seed counts, the
    run count n that keeps the most runs in total (n × tasks with ≥ n runs; ties: more tasks) is used: tasks with
    fewer runs are left out and tasks with more keep their first n seeds. Both are said in ``notes``. Explicit
    ``tasks`` must all have runs (ValueError otherwise) and are all kept, at the smallest run count among them.
    """
    per_task = {t: g.sort_values("seed")["score"].to_numpy(float) for t, g in values.groupby("task")}
    notes: list[str] = []
    if tasks is None:
        counts = sorted({len(v) for v in per_task.values()})
        n = max(counts, key=lambda c: (c * sum(len(v) >= c for v in per_task.values()), -c)) if counts else 0
        tasks = sorted(t for t, v in per_task.items() if len(v) >= n)
        notes += [f"{t}: left out, {len(v)} run(s) < {n}" for t, v in sorted(per_task.items()) if len(v) < n]
    else:
        tasks = list(tasks)
        absent = [t for t in tasks if t not in per_task]
        if absent:
            raise ValueError(f"no runs for task(s) {absent}")
        n = min(len(per_task[t]) for t in tasks)
    notes += [f"{t}: {len(per_task[t]) - n} run(s) beyond the common {n} left out" for t in tasks
              if len(per_task[t]) > n]
    if not tasks:
        return np.zeros((0, 0)), [], notes
    return np.stack([per_task[t][:n] for t in tasks], axis=1), tasks, notes


def _rng(seed: int) -> np.random.RandomState:
    return np.random.RandomState(seed)


def stratified_bootstrap(matrix: np.ndarray, reps: int, rng: np.random.Generator,
                         task_idx: np.ndarray | None = None) -> np.ndarray:
    """(reps, runs, tasks, …) replicates: runs resampled with replacement **within each task** (rliable's scheme).

    ``matrix`` is (runs, tasks) or (runs, tasks, …) — trailing axes (e.g. steps of a curve) travel with their run.
    ``task_idx`` (reps, tasks), from :func:`bootstrap_task_indices`, also resamples the tasks: replicate r's column
    j is task ``task_idx[r, j]`` (pass the same indices to two algorithms to keep them on the same task draw).
    """
    runs, tasks = matrix.shape[:2]
    idx = rng.integers(0, runs, size=(reps, runs, tasks))
    columns = np.arange(tasks) if task_idx is None else np.asarray(task_idx)[:, None, :]
    return matrix[idx, columns]


def metric_replicates(boot: np.ndarray, metric: str) -> np.ndarray:
    """(reps,) values of aggregate ``metric`` over a (reps, runs, tasks) stack of bootstrap replicates
    (:func:`stratified_bootstrap`), vectorised; each replicate's value equals rliable's function on it."""
    if metric not in _VECTOR_METRICS:
        raise ValueError(f"unknown metric {metric!r}; valid: {sorted(METRICS)}")
    return _VECTOR_METRICS[metric](boot)


def bootstrap_task_indices(tasks: int, reps: int, rng: np.random.Generator) -> np.ndarray:
    """(reps, tasks) task indices drawn with replacement: the outer stage of a bootstrap over tasks and runs."""
    return rng.integers(0, tasks, size=(reps, tasks))


def _percentile_ci(replicates: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    alpha = (1.0 - confidence) / 2.0
    low, high = np.percentile(replicates, [100 * alpha, 100 * (1 - alpha)], axis=0)
    return low, high


def _check_engine(engine: str) -> None:
    if engine not in ENGINES:
        raise ValueError(f"unknown statistics engine {engine!r}; valid: {list(ENGINES)}")


def aggregate_with_ci(matrix: np.ndarray, metrics: Iterable[str] = tuple(METRICS), reps: int = 2000,
                      seed: int = 0, confidence: float = 0.95, engine: str = "numpy") -> dict[str, tuple]:
    """{metric: (point, low, high)} for one runs × tasks matrix; points are rliable's aggregate functions.

    ``engine="numpy"`` draws the stratified bootstrap in one vectorised step (percentile CIs);
    ``engine="rliable"`` calls ``rliable.library.get_interval_estimates`` (same scheme, ~50× slower).
    """
    _check_engine(engine)
    names = list(metrics)
    unknown = [m for m in names if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; valid: {sorted(METRICS)}")
    if engine == "rliable":
        points, intervals = rly.get_interval_estimates(
            {"x": matrix}, lambda x: np.array([METRICS[m](x) for m in names]), reps=reps,
            confidence_interval_size=confidence, random_state=_rng(seed))
        return {m: (float(points["x"][i]), float(intervals["x"][0, i]), float(intervals["x"][1, i]))
                for i, m in enumerate(names)}
    boot = stratified_bootstrap(matrix, reps, np.random.default_rng(seed))
    out = {}
    for m in names:
        low, high = _percentile_ci(_VECTOR_METRICS[m](boot), confidence)
        out[m] = (float(METRICS[m](matrix)), float(low), float(high))
    return out


def interval_estimates(values: pd.DataFrame, metrics: Iterable[str] = tuple(METRICS), reps: int = 2000,
                       seed: int = 0, confidence: float = 0.95, group: str | None = "domain",
                       overall: bool = True, engine: str = "numpy") -> pd.DataFrame:
    """Point estimates and stratified-bootstrap CIs of aggregate metrics, per algorithm (and per ``group``).

    Returns ``algorithm, domain, metric, value, low, high, n_tasks, n_runs, notes``. With ``overall``, a domain
    ``"All"`` aggregates, for every algorithm, the tasks that **all** algorithms have (so the row compares like
    with like); per-domain rows use each algorithm's own tasks of the domain (``n_tasks`` says how many).
    """
    names = list(metrics)
    rows = []
    for domain, alg, matrix, _, notes in _aggregate_cells(values, group, overall):
        if matrix.size == 0:
            continue
        result = aggregate_with_ci(matrix, names, reps, seed, confidence, engine)
        for metric in names:
            value, low, high = result[metric]
            rows.append({"algorithm": alg, "domain": domain, "metric": metric, "value": value, "low": low,
                         "high": high, "n_tasks": matrix.shape[1], "n_runs": matrix.size, "notes": "; ".join(notes)})
    return pd.DataFrame(rows, columns=["algorithm", "domain", "metric", "value", "low", "high", "n_tasks", "n_runs",
                                       "notes"])


def _aggregate_cells(values: pd.DataFrame, group: str | None = "domain",
                     overall: bool = True) -> list[tuple[str, str, np.ndarray, list[str], list[str]]]:
    """(domain, algorithm, runs × tasks matrix, tasks, notes) of every row :func:`interval_estimates` writes: per
    ``group`` each algorithm's own tasks (:func:`score_matrix`), and ``All`` the tasks every algorithm shares
    (:func:`common_matrices`). One rule for the numbers and for :func:`aggregate_tasks`, which says which tasks."""
    cells = []
    for domain, frame in (values.groupby(group) if group else []):
        for alg, g in frame.groupby("algorithm"):
            matrix, tasks, notes = score_matrix(g)
            cells.append((domain, alg, matrix, tasks, notes))
    if overall or not group:
        matrices, shared, notes = common_matrices(values)
        cells += [(ALL_DOMAINS, alg, matrix, list(shared), notes[alg]) for alg, matrix in matrices.items()]
    return cells


AGGREGATE_TASKS_COLUMNS = ["algorithm", "domain", "tasks", "n_tasks", "available", "left_out"]


def aggregate_tasks(values: pd.DataFrame, group: str | None = "domain", overall: bool = True) -> pd.DataFrame:
    """Which tasks each row of :func:`interval_estimates` (and so ``per_domain``) aggregates
    (:data:`AGGREGATE_TASKS_COLUMNS`, one row per algorithm × domain): ``tasks`` the tasks used (a sorted tuple),
    ``available`` the tasks the algorithm has runs of in that domain (``All``: anywhere), ``left_out`` the
    difference — tasks with fewer runs than the algorithm's usual count, and in ``All`` the tasks some other
    algorithm lacks (the row compares every algorithm on one common task set)."""
    rows = []
    for domain, alg, matrix, tasks, _ in _aggregate_cells(values, group, overall):
        if matrix.size == 0:
            continue
        mine = values[values["algorithm"] == alg]
        if domain != ALL_DOMAINS and group:
            mine = mine[mine[group] == domain]
        available = tuple(sorted(mine["task"].unique()))
        rows.append({"algorithm": alg, "domain": domain, "tasks": tuple(sorted(tasks)), "n_tasks": len(tasks),
                     "available": available, "left_out": tuple(t for t in available if t not in set(tasks))})
    return pd.DataFrame(rows, columns=AGGREGATE_TASKS_COLUMNS)


def _common_tasks(values: pd.DataFrame) -> list[str]:
    sets = [set(g["task"]) for _, g in values.groupby("algorithm")]
    return sorted(set.intersection(*sets)) if sets else []


def common_matrices(values: pd.DataFrame) -> tuple[dict[str, np.ndarray], list[str], dict[str, list[str]]]:
    """Score matrices of every algorithm on one shared task set, for comparisons that must be like with like.

    The shared set is the tasks every algorithm has *with its usual run count* (:func:`score_matrix`'s rule per
    algorithm), so one task with a short seed does not cut every task down to one run. Returns (matrices, tasks,
    notes per algorithm).
    """
    kept: dict[str, set] = {}
    notes: dict[str, list[str]] = {}
    common = _common_tasks(values)
    frame = values[values["task"].isin(common)]
    for alg, g in frame.groupby("algorithm"):
        _, tasks, alg_notes = score_matrix(g)
        kept[alg], notes[alg] = set(tasks), alg_notes
    shared = sorted(set.intersection(*kept.values())) if kept else []
    matrices = {}
    for alg, g in frame.groupby("algorithm"):
        matrices[alg] = score_matrix(g[g["task"].isin(shared)], shared)[0]
        dropped = sorted(set(common) - set(shared) - (set(common) - kept[alg]))
        if dropped:
            notes[alg].append(f"left out as another algorithm lacks full runs: {', '.join(dropped)}")
    return matrices, shared, notes


def performance_profiles(values: pd.DataFrame, taus: np.ndarray | None = None, reps: int = 2000,
                         seed: int = 0, confidence: float = 0.95) -> pd.DataFrame:
    """Score distributions: the fraction of runs with score > τ, with CIs (``algorithm, tau, fraction, low, high``).

    Taken on the tasks all algorithms share (:func:`common_matrices`; rliable's ``score_distributions``, stratified
    bootstrap).
    """
    taus = np.linspace(0.0, SCORE_MAX, 101) if taus is None else np.asarray(taus, dtype=float)
    matrices, common, _ = common_matrices(values)
    rng = np.random.default_rng(seed)
    rows = []
    for alg, matrix in matrices.items():
        point = rly.score_distributions(matrix, taus)
        boot = np.sort(stratified_bootstrap(matrix, reps, rng).reshape(reps, -1), axis=1)
        fractions = 1.0 - np.stack([np.searchsorted(b, taus, side="right") for b in boot]) / boot.shape[1]
        low, high = _percentile_ci(fractions, confidence)
        rows += [{"algorithm": alg, "tau": float(tau), "fraction": float(point[j]), "low": float(low[j]),
                  "high": float(high[j]), "n_tasks": len(common)} for j, tau in enumerate(taus)]
    return pd.DataFrame(rows, columns=["algorithm", "tau", "fraction", "low", "high", "n_tasks"])


def _poi_vectorised(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """P(X > Y) + ½ P(X = Y) per task averaged over tasks, for (reps, n, T) and (reps, m, T) stacks."""
    gt = (x[:, :, None, :] > y[:, None, :, :]).mean(axis=(1, 2))
    eq = (x[:, :, None, :] == y[:, None, :, :]).mean(axis=(1, 2))
    return (gt + 0.5 * eq).mean(axis=-1)


def probability_of_improvement(values: pd.DataFrame, candidate: str, baselines: Iterable[str] | None = None,
                               reps: int = 2000, seed: int = 0, confidence: float = 0.95,
                               engine: str = "numpy") -> pd.DataFrame:
    """P(candidate > baseline): the chance a random run of ``candidate`` beats one of the baseline on a random task.

    Per pair on the tasks both have (:func:`common_matrices`); point estimate is rliable's ``probability_of_improvement`` (Mann-Whitney U per
    task), the CI an independent stratified bootstrap of both. Returns ``algorithm, baseline, value, low, high,
    n_tasks``.
    """
    _check_engine(engine)
    algorithms = sorted(values["algorithm"].unique())
    if candidate not in algorithms:
        raise ValueError(f"candidate {candidate!r} has no runs; algorithms present: {algorithms}")
    baselines = [a for a in algorithms if a != candidate] if baselines is None else list(baselines)
    rows = []
    for i, base in enumerate(baselines):
        if base not in algorithms:
            raise ValueError(f"baseline {base!r} has no runs; algorithms present: {algorithms}")
        matrices, common, _ = common_matrices(values[values["algorithm"].isin([candidate, base])])
        if not common:
            continue
        x, y = matrices[candidate], matrices[base]
        if engine == "rliable":
            points, intervals = rly.get_interval_estimates(
                {"p": (x, y)}, lambda a, b: np.array([rl_metrics.probability_of_improvement(a, b)]), reps=reps,
                confidence_interval_size=confidence, random_state=_rng(seed + i))
            point, low, high = points["p"][0], intervals["p"][0, 0], intervals["p"][1, 0]
        else:
            rng = np.random.default_rng(seed + i)
            boot = _poi_vectorised(stratified_bootstrap(x, reps, rng), stratified_bootstrap(y, reps, rng))
            point = rl_metrics.probability_of_improvement(x, y)
            low, high = _percentile_ci(boot, confidence)
        rows.append({"algorithm": candidate, "baseline": base, "value": float(point), "low": float(low),
                     "high": float(high), "n_tasks": len(common)})
    return pd.DataFrame(rows, columns=["algorithm", "baseline", "value", "low", "high", "n_tasks"])


def sample_efficiency_curves(aligned: pd.DataFrame, metric: str = "iqm", reps: int = 2000, seed: int = 0,
                             confidence: float = 0.95, group: str = "domain", engine: str = "numpy") -> pd.DataFrame:
    """An aggregate metric (IQM by default) of normalised scores at every grid step, with stratified-bootstrap CIs.

    ``aligned`` comes from :func:`analysis.load.align`. Each (algorithm, domain, step) point is computed like
    :func:`interval_estimates` from the runs that have a value at that step, so early steps a run has not
    reached, or late ones it never got to, change ``n_tasks``/``n_runs`` (kept in the output) rather than being
    filled in. Returns ``algorithm, domain, step, value, low, high, n_tasks, n_runs``.
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; valid: {sorted(METRICS)}")
    rows = []
    for (domain, alg, step), frame in aligned.groupby([group, "algorithm", "step"]):
        matrix, tasks, _ = score_matrix(frame)
        if matrix.size == 0:
            continue
        value, low, high = aggregate_with_ci(matrix, [metric], reps, seed, confidence, engine)[metric]
        rows.append({"algorithm": alg, "domain": domain, "step": int(step), "value": value, "low": low, "high": high,
                     "n_tasks": len(tasks), "n_runs": matrix.size})
    return pd.DataFrame(rows, columns=["algorithm", "domain", "step", "value", "low", "high", "n_tasks", "n_runs"])
