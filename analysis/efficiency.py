"""Sample-efficiency ratio: by what factor k one algorithm needs more env steps than another for the same score.

Definition (for algorithms A and B on the tasks both have, per domain and over all domains):

    B(s) ≈ A(s / k)     ⇔     B(k · u) ≈ A(u)

where A(·) and B(·) are aggregate curves — the mean normalised score over tasks (each task the mean of its runs)
against **env steps**. "B at k·u scores what A scores at u": B needs k times as many env steps as A to reach the
same score. k > 1 means A is the more sample-efficient of the two, k < 1 means B is; k = 2 for A = mbdpo,
B = tdmpc2 reads "TD-MPC2 needs twice MBDPO's env steps".

Estimate (A's curve is only used from its first evaluation after step 0: the unmeasured rise from the untrained
score is not interpolated; B's step 0 is not compared): on a grid of k (241 points, log k uniform in [log 1/8, log 8] by default: 40 per doubling, 1.7 %
apart, with 1/2, 1 and 2 on it), compare B at its grid steps s
with A interpolated linearly at s/k, over the steps where both are defined (s/k inside A's curve), and take the k of
least mean squared error. A k whose overlap has fewer than ``min_points`` of B's grid steps is not considered; if no
k has enough, or either curve is flat (rises by less than ``min_rise`` points: no x-scale to register), k is NaN and
``notes`` says why. A best k on the edge of the grid is flagged (the true factor may lie beyond it).

CI: a bootstrap over tasks and runs — tasks resampled with replacement within the domain (the same draw for A and B,
so both stay on one task set), and runs within each task (:func:`analysis.stats.stratified_bootstrap`, rliable's
scheme) — refitting k on every replicate; percentile interval.

Steps are env steps for every source: released agent-step folders are converted on loading (FIDELITY.md D1;
analysis/units.py), so k depends on the step-unit reading of each source, which the table lists. Each algorithm's
curve lies on its own evaluation grid (its most common evaluation spacing, nearest previous evaluation, never past a
run's last evaluation) so that an agent-step source evaluated every 200k env steps is not drawn as a staircase on a
100k grid; the interpolation of A then runs between its own evaluations.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable

import numpy as np
import pandas as pd

from analysis import AnalysisInputError
from analysis import units as U
from analysis.load import align
from analysis.stats import ALL_DOMAINS, bootstrap_task_indices, stratified_bootstrap

EFFICIENCY_COLUMNS = ["domain", "a", "b", "k", "low", "high", "n_tasks", "runs_a", "runs_b", "steps_from",
                      "steps_to", "n_points", "mse", "units_a", "units_b", "notes"]
CURVE_COLUMNS = ["domain", "a", "b", "k", "curve", "algorithm", "step", "value"]
K_RANGE = (1 / 8, 8.0)
K_POINTS = 241  # 40 per doubling: 1/2, 1, 2, 4 … lie on the grid exactly


def parse_pairs(items: Iterable[str] | None) -> list[tuple[str, str]]:
    """``["mbdpo:tdmpc2", "mbdpo:sac"]`` → ``[("mbdpo", "tdmpc2"), ("mbdpo", "sac")]``; one clear error otherwise."""
    pairs = []
    for item in items or []:
        a, sep, b = (p.strip() for p in str(item).partition(":"))
        if not sep or not a or not b or ":" in b:
            raise AnalysisInputError(f"--efficiency: malformed value {item!r}; expected A:B (e.g. mbdpo:tdmpc2)")
        if a == b:
            raise AnalysisInputError(f"--efficiency: {item!r} compares an algorithm with itself")
        pairs.append((a, b))
    return pairs


def k_grid(low: float = K_RANGE[0], high: float = K_RANGE[1], points: int = K_POINTS) -> np.ndarray:
    """Candidate factors, uniform in log k (default 241 points from 1/8 to 8: every power of 2 is on the grid)."""
    if not 0 < low < high or points < 2:
        raise ValueError(f"k grid needs 0 < low < high and ≥ 2 points; got {low}, {high}, {points}")
    return np.exp(np.linspace(np.log(low), np.log(high), points))


def _own_grid(evals: pd.DataFrame) -> np.ndarray:
    """0, Δ, 2Δ, … up to the last evaluation, Δ = the most common spacing between an algorithm's evaluations."""
    diffs = evals.sort_values("step").groupby(["task", "seed"])["step"].diff().dropna()
    diffs = diffs[diffs > 0]
    end = int(evals["step"].max())
    spacing = int(diffs.mode().iloc[0]) if len(diffs) else max(end, 1)
    return np.arange(0, end + 1, spacing, dtype=np.int64)


def curve_array(evals: pd.DataFrame, tasks: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(steps, array (runs, tasks, steps)) of one algorithm's normalised scores on its own grid; NaN where a run has
    no value (before its first evaluation, after its last, or a task with fewer runs than the most any task has)."""
    steps = _own_grid(evals)
    aligned, _ = align(evals, steps, tolerance=0)
    runs = max(evals.groupby("task")["seed"].nunique().max(), 1)
    array = np.full((runs, len(tasks), len(steps)), np.nan)
    position = {s: i for i, s in enumerate(steps)}
    for j, task in enumerate(tasks):
        sub = aligned[aligned["task"] == task]
        for r, (_, run) in enumerate(sub.groupby("seed")):
            array[r, j, [position[s] for s in run["step"]]] = run["score"].to_numpy(float)
    return steps, array


def _mean_curves(array: np.ndarray) -> np.ndarray:
    """Mean over tasks of each task's mean over runs, on the last axis; (…, runs, tasks, steps) → (…, steps).

    A step where some task has no run is NaN: the aggregate must average the same tasks at every step."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices are exactly the steps to leave out
        per_task = np.nanmean(array, axis=-3)
    return per_task.mean(axis=-2)


def fit_k(a_steps: np.ndarray, a: np.ndarray, b_steps: np.ndarray, b: np.ndarray, ks: np.ndarray,
          min_points: int = 5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Least-squares factor per curve pair: for curves ``a`` (n, len(a_steps)) and ``b`` (n, len(b_steps)), the k of
    ``ks`` minimising mean((B(s) - A(s/k))²) over B's steps s with s/k inside A's finite range.

    Returns (best k (n,), its mse (n,), number of points used (n,)); NaN k where no candidate has ``min_points``.
    """
    a, b = np.atleast_2d(a), np.atleast_2d(b)
    a_steps, b_steps = np.asarray(a_steps, float), np.asarray(b_steps, float)
    errors = np.full((len(a), len(ks)), np.inf)
    counts = np.zeros((len(a), len(ks)), dtype=int)
    low = _first_measured(a_steps)
    for i, k in enumerate(ks):
        x = b_steps / k
        inside = (x >= low) & (x <= a_steps[-1]) & (b_steps > 0)
        lo = np.clip(np.searchsorted(a_steps, x, side="right") - 1, 0, len(a_steps) - 2)
        w = np.clip((x - a_steps[lo]) / (a_steps[lo + 1] - a_steps[lo]), 0.0, 1.0)
        a_at = a[:, lo] * (1.0 - w) + a[:, lo + 1] * w
        # An exact hit on A's grid step must not be spoiled by a NaN neighbour it has zero weight on.
        a_at = np.where(w == 0.0, a[:, lo], np.where(w == 1.0, a[:, lo + 1], a_at))
        diff = b - a_at
        valid = inside & np.isfinite(diff)
        n = valid.sum(axis=1)
        sse = np.where(valid, diff, 0.0) ** 2
        counts[:, i] = n
        errors[:, i] = np.where(n >= min_points, sse.sum(axis=1) / np.maximum(n, 1), np.inf)
    best = errors.argmin(axis=1)
    rows = np.arange(len(a))
    ok = np.isfinite(errors[rows, best])
    return (np.where(ok, ks[best], np.nan), np.where(ok, errors[rows, best], np.nan),
            np.where(ok, counts[rows, best], 0))


def _first_measured(a_steps: np.ndarray) -> float:
    """The first step of A the fit may use: A's first evaluation after step 0.

    Between the untrained evaluation (step 0) and the first one after it the curve is not measured, and that is
    where curves rise steepest (the released DMControl means jump from ~0 to ~65 by 100k): a straight line through
    that gap is a guess that would dominate the squared error, so s/k must land at or after A's first evaluation
    past 0, and B's step 0 (the same untrained pair for every k) is not compared either."""
    positive = a_steps[a_steps > 0]
    return float(positive[0]) if len(positive) else float(a_steps[0])


def _units_text(evals: pd.DataFrame) -> str:
    units = sorted(evals["step_unit"].dropna().unique()) if "step_unit" in evals.columns else [U.ENV]
    return " / ".join(U.reading(u) for u in units) or U.reading(U.ENV)


def sample_efficiency_ratio(evals: pd.DataFrame, a: str, b: str, reps: int = 2000, seed: int = 0,
                            confidence: float = 0.95, ks: np.ndarray | None = None, min_points: int = 5,
                            min_rise: float = 5.0, group: str = "domain",
                            overall: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The factor k by which ``b`` needs more env steps than ``a`` for the same normalised score (module docstring),
    per ``group`` value and (``overall``) over all tasks both have; with a bootstrap CI over tasks and runs.

    ``evals`` is a tidy evaluation table (:data:`analysis.load.EVAL_COLUMNS`, steps in env steps). Returns
    (table with :data:`EFFICIENCY_COLUMNS`, curves with :data:`CURVE_COLUMNS`: A's and B's aggregate curves and B
    drawn at step/k — ``curve`` is ``"a"``, ``"b"`` or ``"b_rescaled"`` — for :func:`efficiency_figure`).
    """
    present = sorted(evals["algorithm"].unique())
    for name in (a, b):
        if name not in present:
            raise AnalysisInputError(f"--efficiency {a}:{b}: no evaluations of {name!r}; algorithms present: "
                                     f"{', '.join(present)}")
    ks = k_grid() if ks is None else np.asarray(ks, float)
    frame = evals[evals["algorithm"].isin([a, b])]
    scopes = [(d, g) for d, g in frame.groupby(group)] if group else []
    if overall or not group:
        scopes.append((ALL_DOMAINS, frame))
    rng = np.random.default_rng(seed)
    rows, curves = [], []
    for domain, sub in scopes:
        ea, eb = sub[sub["algorithm"] == a], sub[sub["algorithm"] == b]
        tasks = sorted(set(ea["task"]) & set(eb["task"]))
        row = {"domain": domain, "a": a, "b": b, "k": np.nan, "low": np.nan, "high": np.nan, "n_tasks": len(tasks),
               "runs_a": 0, "runs_b": 0, "steps_from": pd.NA, "steps_to": pd.NA, "n_points": 0, "mse": np.nan,
               "units_a": _units_text(ea), "units_b": _units_text(eb), "notes": ""}
        if not tasks:
            rows.append({**row, "notes": f"no task has runs of both {a} and {b}"})
            continue
        ea, eb = ea[ea["task"].isin(tasks)], eb[eb["task"].isin(tasks)]
        row["runs_a"] = int(ea.groupby(["task", "seed"]).ngroups)
        row["runs_b"] = int(eb.groupby(["task", "seed"]).ngroups)
        a_steps, a_arr = curve_array(ea, tasks)
        b_steps, b_arr = curve_array(eb, tasks)
        a_mean, b_mean = _mean_curves(a_arr), _mean_curves(b_arr)
        curves += _curve_rows(domain, a, b, a_steps, a_mean, b_steps, b_mean)
        rise = {name: float(np.nanmax(c) - np.nanmin(c)) if np.isfinite(c).any() else 0.0
                for name, c in ((a, a_mean), (b, b_mean))}
        flat = [name for name, r in rise.items() if r < min_rise]
        if flat:
            rows.append({**row, "notes": f"k not identified: the aggregate curve of {' and '.join(flat)} rises by "
                                         f"< {min_rise:g} points (no x-scale to register)"})
            continue
        k, mse, n = fit_k(a_steps, a_mean, b_steps, b_mean, ks, min_points)
        if not np.isfinite(k[0]):
            rows.append({**row, "notes": f"overlap too small: no k in [{ks[0]:.3g}, {ks[-1]:.3g}] compares ≥ "
                                         f"{min_points} of {b}'s steps with {a}'s curve"})
            continue
        k0 = float(k[0])
        used = _used_steps(a_steps, a_mean, b_steps, b_mean, k0)
        boot = _bootstrap_k(a_steps, a_arr, b_steps, b_arr, ks, min_points, reps, rng)
        finite = boot[np.isfinite(boot)]
        alpha = (1.0 - confidence) / 2.0
        low, high = (np.percentile(finite, [100 * alpha, 100 * (1 - alpha)]) if len(finite) else (np.nan, np.nan))
        notes = []
        if np.isclose(k0, ks[0]) or np.isclose(k0, ks[-1]):
            notes.append(f"k on the edge of the grid [{ks[0]:.3g}, {ks[-1]:.3g}]: the factor may lie beyond it")
        if len(finite) < reps:
            notes.append(f"{reps - len(finite)} of {reps} bootstrap replicates gave no k")
        top_a, top_b = float(np.nanmax(a_mean)), float(np.nanmax(b_mean))
        if abs(top_a - top_b) > min_rise:
            # A stretch in x cannot close a gap in y: k then registers only the scores both curves reach.
            low_name, high_name = (b, a) if top_b < top_a else (a, b)
            notes.append(f"{low_name} never reaches {high_name}'s best score ({min(top_a, top_b):.1f} vs "
                         f"{max(top_a, top_b):.1f}): k registers only the scores both reach")
        rows.append({**row, "k": k0, "low": float(low), "high": float(high), "steps_from": int(used.min()),
                     "steps_to": int(used.max()), "n_points": int(n[0]), "mse": float(mse[0]),
                     "notes": "; ".join(notes)})
        curves += _curve_rows(domain, a, b, None, None, b_steps / k0, b_mean, k0, rescaled=True)
    table = pd.DataFrame(rows, columns=EFFICIENCY_COLUMNS)
    table["steps_from"] = table["steps_from"].astype("Int64")
    table["steps_to"] = table["steps_to"].astype("Int64")
    return table, pd.DataFrame(curves, columns=CURVE_COLUMNS)


def _used_steps(a_steps, a_mean, b_steps, b_mean, k) -> np.ndarray:
    """B's env steps that the fit at ``k`` compared (s/k inside A's finite curve, both values finite)."""
    finite_a = a_steps[np.isfinite(a_mean)]
    x = b_steps / k
    inside = ((x >= _first_measured(finite_a)) & (x <= finite_a.max()) & np.isfinite(b_mean) & (b_steps > 0))
    return b_steps[inside] if inside.any() else np.array([0])


def _bootstrap_k(a_steps, a_arr, b_steps, b_arr, ks, min_points, reps, rng, chunk: int = 200) -> np.ndarray:
    """k refitted on ``reps`` replicates: one task draw shared by A and B, runs resampled within tasks for each."""
    tasks = a_arr.shape[1]
    out = []
    for start in range(0, reps, chunk):  # chunks bound the (reps, runs, tasks, steps) stacks' memory
        n = min(chunk, reps - start)
        task_idx = bootstrap_task_indices(tasks, n, rng)
        a_boot = _mean_curves(stratified_bootstrap(a_arr, n, rng, task_idx))
        b_boot = _mean_curves(stratified_bootstrap(b_arr, n, rng, task_idx))
        out.append(fit_k(a_steps, a_boot, b_steps, b_boot, ks, min_points)[0])
    return np.concatenate(out) if out else np.zeros(0)


def _curve_rows(domain, a, b, a_steps, a_mean, b_steps, b_mean, k=np.nan, rescaled=False) -> list[dict]:
    rows = []
    if not rescaled:
        rows += [{"domain": domain, "a": a, "b": b, "k": np.nan, "curve": "a", "algorithm": a, "step": float(s),
                  "value": float(v)} for s, v in zip(a_steps, a_mean) if np.isfinite(v)]
    rows += [{"domain": domain, "a": a, "b": b, "k": k, "curve": "b_rescaled" if rescaled else "b", "algorithm": b,
              "step": float(s), "value": float(v)} for s, v in zip(b_steps, b_mean) if np.isfinite(v)]
    return rows


def default_pairs(algorithms: Iterable[str]) -> list[tuple[str, str]]:
    """mbdpo:tdmpc2 when both are present (and their released copies, ``… (published)``, when both are)."""
    present = set(algorithms)
    candidates = [("mbdpo", "tdmpc2"), ("mbdpo (published)", "tdmpc2 (published)")]
    return [(x, y) for x, y in candidates if x in present and y in present]
