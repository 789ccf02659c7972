"""Offline multi-task runs (run-file format 3): learning curves in gradient updates and the scaling figure (fig. 6).

Input is ``RunSet.offline`` (:data:`analysis.load.OFFLINE_COLUMNS`): one normalised score per (run, task,
evaluation), ``step`` in **gradient updates**. Offline runs never meet the online tables, whose steps are env
steps. A cell is (dataset, algorithm, model size): its value is the mean normalised score over the dataset's tasks
and the cell's seeds, and its 95 % CI a two-stage percentile bootstrap — tasks resampled, then seeds within each
drawn task (:func:`analysis.stats.stratified_bootstrap` with :func:`analysis.stats.bootstrap_task_indices`). Tasks
are resampled as well as seeds because the scaling sweep runs one seed per size (config/scaling.yaml): a
bootstrap over seeds alone would give it a zero-width interval. A run's *final* evaluation is its last one; a
cell whose runs end at different updates says so in ``notes``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from analysis import figures as F
from analysis import stats as S
from analysis.load import PRESET_PARAMETERS

CELL = ["dataset", "algorithm", "model_size"]
SCORES_COLUMNS = ["algorithm", "name", "dataset", "model_size", "params", "task", "suite", "domain", "seed", "step",
                  "total_steps", "return", "success", "score", "config_hash", "path"]
CURVE_COLUMNS = ["dataset", "algorithm", "model_size", "params", "step", "value", "low", "high", "n_tasks", "n_runs"]
SCALING_COLUMNS = ["dataset", "algorithm", "model_size", "params", "mean", "low", "high", "n_tasks", "n_seeds",
                   "step_min", "step_max", "notes"]
X_LABEL_UPDATES = "gradient updates"
Y_LABEL = "mean normalised score (0-100)"


def size_order(sizes: pd.Series | list[str]) -> list[str]:
    """Model sizes smallest first: presets by parameter count, then any others by name (so a legend and a table
    read 1.7M, 6M, 21M, … rather than alphabetically 1.7M, 21M, 340M, 54M, 6M)."""
    present = sorted({str(s) for s in sizes})
    known = sorted((s for s in present if s in PRESET_PARAMETERS), key=PRESET_PARAMETERS.__getitem__)
    return known + [s for s in present if s not in PRESET_PARAMETERS]


def mean_ci(matrix: np.ndarray, reps: int = 2000, seed: int = 0, confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high) of a seeds × tasks score matrix: the mean over all cells and a percentile CI from a
    bootstrap that resamples tasks and, within each drawn task, seeds (see the module docstring for why both)."""
    matrix = np.asarray(matrix, dtype=float)
    if matrix.ndim != 2 or matrix.size == 0:
        raise ValueError(f"mean_ci needs a non-empty seeds × tasks matrix, got shape {matrix.shape}")
    rng = np.random.default_rng(seed)
    task_idx = S.bootstrap_task_indices(matrix.shape[1], reps, rng)
    boot = S.stratified_bootstrap(matrix, reps, rng, task_idx).reshape(reps, -1).mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.percentile(boot, [100 * alpha, 100 * (1 - alpha)])
    return float(matrix.mean()), float(low), float(high)


def final_scores(offline: pd.DataFrame) -> pd.DataFrame:
    """Each run's last evaluation of each task (``SCORES_COLUMNS``): the numbers behind the scaling table and
    ``tables/offline_scores.csv``. A run's last evaluation is the one at its largest update; an unfinished run's is
    where it stopped (its ``step`` shows it, and the loader reported it ``incomplete``)."""
    if offline.empty:
        return pd.DataFrame(columns=SCORES_COLUMNS)
    last = offline.groupby([*CELL, "seed"])["step"].transform("max")
    rows = offline[offline["step"] == last]
    return rows[SCORES_COLUMNS].sort_values([*CELL, "seed", "task"], key=_size_key).reset_index(drop=True)


def _size_key(column: pd.Series) -> pd.Series:
    if column.name != "model_size":
        return column
    order = {s: i for i, s in enumerate(size_order(column))}
    return column.map(order)


def _matrix(frame: pd.DataFrame) -> tuple[np.ndarray, list[str], list[str]]:
    """seeds × tasks of one cell (``analysis.stats.score_matrix``: tasks with fewer seeds left out, in ``notes``)."""
    return S.score_matrix(frame[["task", "seed", "score"]])


def scaling_table(scores: pd.DataFrame, reps: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Fig. 6's numbers (``SCALING_COLUMNS``): per dataset, algorithm and model size, the mean final normalised
    score over the dataset's tasks and seeds with its 95 % CI (:func:`mean_ci`). ``scores`` is
    :func:`final_scores`' table; rows come smallest model first."""
    rows = []
    for (dataset, alg, size), frame in scores.groupby(CELL, sort=False):
        matrix, tasks, notes = _matrix(frame)
        if matrix.size == 0:
            continue
        mean, low, high = mean_ci(matrix, reps, seed)
        steps = frame.groupby("seed")["step"].max()
        if steps.nunique() > 1:
            notes = [*notes, f"runs end at different updates ({', '.join(f'seed {s}: {v}' for s, v in steps.items())})"]
        rows.append({"dataset": dataset, "algorithm": alg, "model_size": size, "params": float(frame["params"].iloc[0]),
                     "mean": mean, "low": low, "high": high, "n_tasks": len(tasks), "n_seeds": matrix.shape[0],
                     "step_min": int(steps.min()), "step_max": int(steps.max()), "notes": "; ".join(notes)})
    table = pd.DataFrame(rows, columns=SCALING_COLUMNS)
    return table.sort_values(CELL, key=_size_key).reset_index(drop=True)


def offline_curves(offline: pd.DataFrame, reps: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Learning curves (``CURVE_COLUMNS``): per dataset, algorithm, model size and evaluation update, the mean
    normalised score over tasks and seeds with its 95 % CI (:func:`mean_ci`). Offline runs of one config evaluate
    every task at the same updates (0, ``eval_every``, …, the end), so evaluations are grouped by their exact update;
    an update some runs lack has fewer ``n_runs`` rather than a filled-in value."""
    rows = []
    for (dataset, alg, size, step), frame in offline.groupby([*CELL, "step"], sort=False):
        matrix, tasks, _ = _matrix(frame)
        if matrix.size == 0:
            continue
        value, low, high = mean_ci(matrix, reps, seed)
        rows.append({"dataset": dataset, "algorithm": alg, "model_size": size, "params": float(frame["params"].iloc[0]),
                     "step": int(step), "value": value, "low": low, "high": high, "n_tasks": len(tasks),
                     "n_runs": int(matrix.shape[0])})
    table = pd.DataFrame(rows, columns=CURVE_COLUMNS)
    return table.sort_values([*CELL, "step"], key=_size_key).reset_index(drop=True)


def _updates(ax) -> None:
    ax.xaxis.set_major_formatter(lambda x, _: "0" if x == 0 else f"{x / 1e6:g}M" if abs(x) >= 1e6
                                 else f"{x / 1e3:g}k" if abs(x) >= 1e3 else f"{x:g}")


LINESTYLES = ("-", "--", ":", "-.")
"""Line style per algorithm in :func:`offline_curves_figure` (colour is the model size)."""


def offline_curves_figure(curves: pd.DataFrame, ncols: int = 4) -> Figure:
    """Mean normalised score against gradient updates: one panel per (dataset, algorithm), one line per model size
    (a sequential colour, smallest lightest, so that "larger is better" reads as a gradient), 95 % CI bands; each
    panel's title says how many tasks and runs its bands rest on.
    ``curves`` is :func:`offline_curves`' table.

    The legend is shared by the panels, so each entry names its algorithm as well as its size ("MBDPO 1.7M (1.7M
    params)") and each algorithm has its own line style: two algorithms of one preset share a colour, and entries
    "1.7M (1.7M params)" / "1.7M (1.4M params)" in one colour did not say which was which."""
    if curves.empty:
        return F._empty("no offline evaluations")
    panels = [(d, a) for d in sorted(curves["dataset"].unique()) for a in F.ordered(curves["algorithm"])
              if ((curves["dataset"] == d) & (curves["algorithm"] == a)).any()]
    fig, axes = F._grid(len(panels), ncols, size=(3.4, 2.7))
    sizes = size_order(curves["model_size"])
    algorithms = F.ordered(curves["algorithm"])
    palette = dict(zip(sizes, F.sns.color_palette("viridis", n_colors=max(len(sizes), 1))))
    styles = {a: LINESTYLES[i % len(LINESTYLES)] for i, a in enumerate(algorithms)}
    order: dict[str, tuple[int, int]] = {}  # legend label → (algorithm, size) rank
    for ax, (dataset, alg) in zip(axes, panels):
        sub = curves[(curves["dataset"] == dataset) & (curves["algorithm"] == alg)]
        for size in size_order(sub["model_size"]):
            c = sub[sub["model_size"] == size].sort_values("step")
            params = c["params"].iloc[0]
            label = f"{F.display_name(alg)} {size}" + ("" if math.isnan(params) else f" ({params / 1e6:.1f}M params)")
            order[label] = (algorithms.index(alg), sizes.index(size))
            ax.plot(c["step"], c["value"], color=palette[size], ls=styles[alg], marker="o", ms=3, label=label)
            ax.fill_between(c["step"], c["low"], c["high"], color=palette[size], alpha=0.2, lw=0)
        # the band's sample size beside it: over 2 tasks of 1 run a 95 % interval spans almost the whole range
        n_tasks, n_runs = int(sub["n_tasks"].max()), int(sub["n_runs"].max())
        ax.set_title(f"{F.display_name(alg)}, {dataset}\nbands: 95% CI over {F.count(n_tasks, 'task')} x "
                     f"{F.count(n_runs, 'run')}", fontsize=9)
        ax.set_xlabel(X_LABEL_UPDATES)
        ax.set_ylabel(Y_LABEL)
        _updates(ax)
        ax.grid(alpha=0.3)
    F._legend(fig, _AllPanels(axes, key=order.__getitem__))
    return fig


class _AllPanels:
    """Legend handles of every label drawn in any panel, once each (panels may differ), optionally sorted."""

    def __init__(self, axes: list, key=None) -> None:
        self.axes, self.key = axes, key

    def get_legend_handles_labels(self) -> tuple[list, list]:
        seen: dict[str, object] = {}
        for ax in self.axes:
            for handle, label in zip(*ax.get_legend_handles_labels()):
                seen.setdefault(label, handle)
        labels = sorted(seen, key=self.key) if self.key is not None else list(seen)
        return [seen[label] for label in labels], labels


def scaling_figure(scaling: pd.DataFrame) -> Figure:
    """Fig. 6: final mean normalised score against learnable parameters (log x), one panel per dataset (mt30,
    mt80, …), one line per algorithm with its 95 % CI band. ``scaling`` is :func:`scaling_table`'s table; sizes
    without a known parameter count (NaN) cannot be placed and are left out of the figure (they stay in the
    table).

    A dataset with fewer than two model sizes (:data:`analysis.figures.MIN_SCALING_SIZES`) is no curve: its panel
    says how many sizes it has instead (one preset's points of two algorithms sit a little apart on the x axis and
    looked like a sweep); when no dataset has two, the figure is that message alone. The axes are padded so that no
    point or band sits on a panel's edge."""
    data = scaling.dropna(subset=["params"])
    if data.empty:
        return F._empty("no offline runs of a known size preset")
    datasets = sorted(data["dataset"].unique())
    sizes = {d: size_order(data.loc[data["dataset"] == d, "model_size"]) for d in datasets}
    if all(len(s) < F.MIN_SCALING_SIZES for s in sizes.values()):
        return F._empty("; ".join(F.too_few_sizes(len(sizes[d]), sizes[d], d) for d in datasets))
    fig, axes = F._grid(len(datasets), 3, size=(4.2, 3.2))
    palette = F.colors(data["algorithm"])
    for ax, dataset in zip(axes, datasets):
        sub = data[data["dataset"] == dataset]
        title = f"{dataset} ({F.count(sub['n_tasks'].max(), 'task')})"
        if len(sizes[dataset]) < F.MIN_SCALING_SIZES:
            F.message_panel(ax, F.too_few_sizes(len(sizes[dataset]), sizes[dataset]), title=title, fontsize=10)
            continue
        for alg in F.ordered(sub["algorithm"]):
            c = sub[sub["algorithm"] == alg].sort_values("params")
            ax.plot(c["params"], c["mean"], color=palette[alg], marker="o", label=F.display_name(alg))
            ax.fill_between(c["params"], c["low"], c["high"], color=palette[alg], alpha=0.2, lw=0)
        ax.set_xscale("log")
        # one tick per preset, at the geometric mean of the algorithms' counts (MBDPO's include its energy and
        # score network, so the points of one preset sit a little apart; README.md "Size presets" has each count)
        ticks = sub.groupby("model_size")["params"].apply(lambda p: float(np.exp(np.log(p).mean())))
        ax.set_xticks(list(ticks.values), list(ticks.index))
        ax.minorticks_off()
        F.pad_limits(ax, x=sub["params"], y=[*sub["low"], *sub["high"], *sub["mean"]])
        ax.set_xlabel("learnable parameters (log scale), by preset")
        ax.set_ylabel("final " + Y_LABEL)
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3, which="both")
    F._legend(fig, _AllPanels(axes))
    return fig
