"""The paper's figures, one function each: tidy DataFrame in, ``matplotlib.figure.Figure`` out.

Figures are built on ``Figure`` objects (no pyplot state), so they work headless, in notebooks and in the
workflow alike; :func:`save` writes them. Colours are fixed per algorithm so every figure agrees.
"""

from __future__ import annotations

import math
import textwrap
import zlib
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from analysis import PAPER_ALGORITHMS
from fileio import atomic_write

DOMAIN_ORDER = ("DMControl", "MetaWorld", "ManiSkill2", "MyoSuite", "Visual RL", "All")
ALGORITHM_ORDER = PAPER_ALGORITHMS
"""The paper's algorithms, first in every legend with fixed colours; any other (a plug-in algorithm, a variant) is
drawn after them, named as its runs are and coloured by :func:`colors`."""
DISPLAY_NAMES = {"mbdpo": "MBDPO", "tdmpc2": "TD-MPC2", "dreamerv3": "DreamerV3", "sac": "SAC", "tdmpc": "TD-MPC"}
DIAGNOSTIC_NAMES = {  # train.csv columns (results/README.md); the last two are the names of runs before format 1.1
    "cross_td_error": "cross-TD error (bootstrap from the acting policy)", "td_error": "TD error",
    "behaviour_drift": "behaviour drift (acting action vs replay, RMS per dim)",
    "search_prior_drift": "search-prior drift (log-ratio, search vs policy prior)",
    "search_prior_mean_drift": "search-prior mean drift (relative)",
    "policy_drift": "search-prior drift (log-ratio; runs before format 1.1)",
    "mean_drift": "search-prior mean drift (runs before format 1.1)"}
DIAGNOSTIC_UNITS = {  # y-axis label: the quantity each train.csv column measures (results/README.md)
    "cross_td_error": "squared TD error (cross)", "td_error": "squared TD error",
    "behaviour_drift": "RMS action difference / dim",
    "search_prior_drift": "KL(search ‖ policy prior), nats", "search_prior_mean_drift": "‖μ_search − μ_θ‖ / ‖μ_θ‖",
    "policy_drift": "KL(search ‖ policy prior), nats", "mean_drift": "‖μ_search − μ_θ‖ / ‖μ_θ‖"}
LOG_SCALE_DECADES = 2.0
"""A diagnostic whose positive values span more than this many decades is drawn on a log y axis."""
METRIC_NAMES = {"iqm": "IQM", "mean": "Mean", "median": "Median", "optimality_gap": "Optimality gap"}


O2O_SUFFIXES = {"-finetune": "fine-tuned", "-scratch": "from scratch"}
"""The offline-to-online families of workflow/scripts/plan.py ``expand_o2o`` (``<algo>-finetune``,
``<algo>-scratch``): named and coloured after their algorithm wherever they are drawn (analysis/o2o.py)."""


def _o2o_family(base: str) -> tuple[str, str] | None:
    """``mbdpo-finetune`` → (``mbdpo``, ``-finetune``); None for any other name."""
    for suffix in O2O_SUFFIXES:
        if base.endswith(suffix) and len(base) > len(suffix):
            return base[: -len(suffix)], suffix
    return None


def display_name(algorithm: str) -> str:
    """``tdmpc2`` → ``TD-MPC2``; variants keep their suffix (``mbdpo (published)`` → ``MBDPO (published)``);
    O2O families read ``MBDPO fine-tuned`` / ``MBDPO from scratch``."""
    head, sep, tail = algorithm.partition(" ")
    base, at, suffix = head.partition("@")
    family = _o2o_family(base)
    if family is not None:
        return f"{DISPLAY_NAMES.get(family[0], family[0])} {O2O_SUFFIXES[family[1]]}" + at + suffix + sep + tail
    return DISPLAY_NAMES.get(base, base) + at + suffix + sep + tail


def ordered(algorithms: Iterable[str]) -> list[str]:
    """Algorithms in the paper's order (MBDPO first), then the rest alphabetically."""
    def key(a: str) -> tuple:
        base = a.split(" ")[0].split("@")[0]
        base = (_o2o_family(base) or (base,))[0]  # an O2O family next to its algorithm
        return (ALGORITHM_ORDER.index(base) if base in ALGORITHM_ORDER else len(ALGORITHM_ORDER), a)
    return sorted(set(algorithms), key=key)


def _spare_colours() -> list[tuple]:
    """Colours for algorithms outside :data:`ALGORITHM_ORDER` (plug-ins, variants): tab10's five the paper's
    algorithms leave, then the dark shades of tab20b; none is one of the paper's colours or their lighter shades."""
    tab10 = sns.color_palette("tab10", n_colors=10)
    return [*tab10[len(ALGORITHM_ORDER):], *sns.color_palette("tab20b", n_colors=20)[::4]]


def _lighter(color: tuple) -> tuple:
    return tuple(0.55 * c + 0.45 for c in color)


def colors(algorithms: Iterable[str]) -> dict[str, tuple]:
    """A colour per algorithm: the paper's five have fixed colours, released copies (``… (published)``) a lighter
    shade of their algorithm's, and any other label (a plug-in algorithm, a variant) one of the spare colours chosen
    by its name (a hash: the same in every figure and every call), never one of the paper's. Two such labels drawn
    together never share one: when their names hash to the same colour the one later in alphabetical order takes the
    next free spare colour (only then does a colour depend on what else is drawn)."""
    palette = sns.color_palette("tab10", n_colors=10)
    spare = _spare_colours()
    paired = sns.color_palette("Paired", n_colors=12)
    out: dict[str, tuple] = {}
    hashed: list[str] = []
    for alg in sorted(set(algorithms)):
        head = alg.split(" ")[0]
        base = head.split("@")[0]
        family = _o2o_family(base)
        if head == alg and base == head and family is not None and family[0] in ALGORITHM_ORDER:
            # a light/dark pair of one hue per algorithm: the spare colours (chosen by name) collided, e.g.
            # mbdpo-scratch and tdmpc2-finetune
            i = ALGORITHM_ORDER.index(family[0])
            out[alg] = paired[(2 * i + (family[1] == "-finetune")) % len(paired)]
        elif head == alg and base == head and base in ALGORITHM_ORDER:
            out[alg] = palette[ALGORITHM_ORDER.index(base)]
        elif base in ALGORITHM_ORDER and head == base:  # "mbdpo (published)"
            out[alg] = _lighter(palette[ALGORITHM_ORDER.index(base)])
        else:
            hashed.append(alg)
    own = [a for a in hashed if a.split(" ")[0] == a]  # plain labels first: a released copy takes its label's shade
    taken: set[int] = set()
    for alg in own:
        i = zlib.crc32(alg.encode()) % len(spare)
        if i in taken and len(taken) < len(spare):  # more labels than spare colours: a repeat is unavoidable
            i = next(j for j in [*range(i + 1, len(spare)), *range(i)] if j not in taken)
        taken.add(i)
        out[alg] = spare[i]
    for alg in hashed:
        if alg in out:
            continue
        head = alg.split(" ")[0]
        base_color = out.get(head, spare[zlib.crc32(head.encode()) % len(spare)])
        out[alg] = _lighter(base_color)  # "linear (published)": a lighter shade of linear's, as for the paper's
    return out


def _domains(values: Iterable[str]) -> list[str]:
    """The paper's domains in its order, then any other (a task plug-in's domain, ``?`` for one not recorded)
    alphabetically, then ``All``."""
    present = set(values)
    known = [d for d in DOMAIN_ORDER if d in present and d != "All"]
    return known + sorted(present - set(DOMAIN_ORDER)) + (["All"] if "All" in present else [])


def domain_key(domain: str) -> tuple:
    """A sort key putting domains in :func:`_domains`' order (for tables sorted by domain)."""
    if domain == "All":
        return (2, "")
    return (0, f"{DOMAIN_ORDER.index(domain):02d}") if domain in DOMAIN_ORDER else (1, str(domain))


def _grid(n: int, ncols: int, size: tuple[float, float] = (3.2, 2.6)) -> tuple[Figure, list]:
    ncols = max(1, min(ncols, n))
    nrows = max(1, math.ceil(n / ncols))
    fig = Figure(figsize=(size[0] * ncols, size[1] * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel().tolist()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def _millions(ax) -> None:
    # below 1,000 the plain number: "0.0002k" read as a step count when an axis had no steps on it
    ax.xaxis.set_major_formatter(lambda x, _: "0" if x == 0 else f"{x / 1e6:g}M" if abs(x) >= 1e6
                                 else f"{x / 1e3:g}k" if abs(x) >= 1e3 else f"{x:g}")


def count(n: int, noun: str) -> str:
    """``count(1, "task")`` → ``1 task``, ``count(2, "task")`` → ``2 tasks``: titles and notes say "(1 task)"."""
    n = int(n)
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def message_panel(ax, text: str, title: str | None = None, fontsize: float = 9) -> None:
    """``ax`` as a panel that says ``text`` instead of drawing axes: no ticks, spines or grid, so that a panel
    without data never passes for an empty plot (ticks like "0.0002k" on nothing)."""
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=fontsize, wrap=True)
    width = max(20, int(ax.get_position().width * ax.figure.get_figwidth() * 72 / (0.6 * fontsize)))
    ax.text(0.5, 0.5, "\n".join(textwrap.wrap(text, width, break_on_hyphens=False)) or text, ha="center",
            va="center", fontsize=fontsize, transform=ax.transAxes, color="dimgray")


def pad_limits(ax, x: Iterable[float] | None = None, y: Iterable[float] | None = None, fraction: float = 0.08,
               min_pad: float = 1.0) -> None:
    """Axis limits ``fraction`` of the data span beyond the extreme ``x`` (and ``y``) values, at least ``min_pad``
    (data units; on a log axis, a factor of 10 ** (``fraction`` decades)): a point at the data's edge, or an interval
    whose bar starts there (bars' edges are "sticky" and take no automatic margin), stays inside the panel."""
    for values, axis in ((x, "x"), (y, "y")):
        if values is None:
            continue
        v = np.asarray([float(t) for t in values], dtype=float)
        v = v[np.isfinite(v)]
        if not len(v):
            continue
        log = (ax.get_xscale() if axis == "x" else ax.get_yscale()) == "log"
        if log:
            v = np.log10(v[v > 0])
            if not len(v):
                continue
        low, high = float(v.min()), float(v.max())
        pad = max(fraction * (high - low), fraction if log else min_pad)
        lo, hi = low - pad, high + pad
        if log:
            lo, hi = 10.0 ** lo, 10.0 ** hi
        (ax.set_xlim if axis == "x" else ax.set_ylim)(lo, hi)


class _Panels:
    """Legend handles of every label drawn in any of ``axes``, once each, in the paper's order of ``algorithms``
    (their display names; others after, as first drawn): an algorithm drawn only in a later panel (a plug-in that ran
    only its own task plug-in's domain, a baseline with a task the others lack) is in the legend too."""

    def __init__(self, axes: list, algorithms: Iterable[str]) -> None:
        self.axes = axes
        self.rank = {display_name(a): i for i, a in enumerate(ordered(algorithms))}

    def get_legend_handles_labels(self) -> tuple[list, list]:
        seen: dict[str, object] = {}
        for ax in self.axes:
            for handle, label in zip(*ax.get_legend_handles_labels()):
                seen.setdefault(label, handle)
        labels = sorted(seen, key=lambda label: self.rank.get(label, len(self.rank)))  # stable: ties keep drawn order
        return [seen[label] for label in labels], labels


def _legend(fig: Figure, handles_from) -> None:
    """One legend for the figure, above the panels (the bottom holds the step-unit note), in as many columns (at most 6) as fit the figure's width: a
    one-panel figure stacks its entries rather than cutting their names off at the edges."""
    handles, labels = handles_from.get_legend_handles_labels()
    if not handles:
        return
    if not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)  # a renderer to measure text with (saving picks its own canvas by format)
    renderer = fig.canvas.get_renderer()
    for ncols in range(min(len(labels), 6), 0, -1):
        legend = fig.legend(handles, labels, loc="outside upper center", ncols=ncols, frameon=False)
        extent = legend.get_window_extent(renderer)
        if ncols == 1 or extent.width <= 0.98 * fig.bbox.width:
            fig.set_figheight(fig.get_figheight() + extent.height / fig.dpi)  # its rows do not squash the panels
            return
        legend.remove()


def _wrap(fig: Figure, text: str, fontsize: float) -> str:
    """``text`` broken into lines that fit the figure's width at ``fontsize`` points (a figure-wide caption of a
    one-panel figure must not run off both edges)."""
    chars = max(20, int(fig.get_figwidth() * 72 / (0.6 * fontsize)))
    return "\n".join(textwrap.wrap(text, chars, break_on_hyphens=False)) or text


def _empty(message: str) -> Figure:
    fig = Figure(figsize=(5, 2))
    ax = fig.subplots()
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True)
    return fig


def mark(fig: Figure, note: str | None) -> Figure:
    """``fig`` with ``note`` as the first line of its title, or as its legend's title where it has a figure legend (e.g. :data:`analysis.report.SMOKE_NOTE`: a figure of a
    smoke-scale run must not pass for a result wherever it is copied to); no ``note``: ``fig`` unchanged."""
    if not note:
        return fig
    text = _wrap(fig, note, 11)
    fig.set_figheight(fig.get_figheight() + 0.25 * (text.count("\n") + 1))  # room for it, not taken from the panels
    if fig.legends:  # a figure legend sits where a suptitle goes (both on the top margin): head it instead
        legend = fig.legends[0]
        legend.set_title(text, prop={"size": 11})
        legend.get_title().set_color("firebrick")
        return fig
    title = fig._suptitle.get_text() if fig._suptitle is not None else ""
    fig.suptitle(text + (f"\n{title}" if title else ""), color="firebrick", fontsize=11)
    return fig


def save(fig: Figure, path: str | Path, dpi: int = 130) -> Path:
    """Write ``fig`` (PNG, PDF or SVG by suffix) atomically: a reader never sees half an image."""
    path = Path(path)
    atomic_write(path, lambda f: fig.savefig(f, dpi=dpi, format=path.suffix.lstrip(".") or "png"), mode="wb")
    return path


# ------------------------------------------------------------------------------------ aggregate results (fig. 1, 4-5)

def aggregate_curves(curves: pd.DataFrame, ylabel: str = "IQM normalised score", ncols: int = 5,
                     title: str | None = None, units_note: str | None = None) -> Figure:
    """Fig. 1, 4-5: an aggregate score (with its CI band) against env steps, one panel per domain.

    ``curves`` is :func:`analysis.stats.sample_efficiency_curves`' table; ``units_note`` (how each source's steps
    became env steps, :func:`analysis.units.readings_note`) is printed under the panels.
    """
    if curves.empty:
        return _empty("no aggregate curves: no aligned evaluations")
    domains = _domains(curves["domain"])
    fig, axes = _grid(len(domains), ncols)
    palette = colors(curves["algorithm"])
    for ax, domain in zip(axes, domains):
        sub = curves[curves["domain"] == domain]
        for alg in ordered(sub["algorithm"]):
            c = sub[sub["algorithm"] == alg].sort_values("step")
            ax.plot(c["step"], c["value"], color=palette[alg], label=display_name(alg), lw=1.6)
            ax.fill_between(c["step"], c["low"], c["high"], color=palette[alg], alpha=0.2, lw=0)
        ax.set_title(f"{domain} ({count(sub['n_tasks'].max(), 'task')})")
        ax.set_xlabel("env steps")
        ax.set_ylim(-2, 102)
        _millions(ax)
        ax.grid(alpha=0.3)
    for ax in axes:
        ax.set_ylabel(ylabel)
    _legend(fig, _Panels(axes, curves["algorithm"]))
    if units_note:
        fig.supxlabel(_wrap(fig, units_note, 8), fontsize=8)
    if title:
        fig.suptitle(_wrap(fig, title, 12))
    return fig


def efficiency_figure(curves: pd.DataFrame, row: Mapping, units_note: str = "x: env steps") -> Figure:
    """The sample-efficiency ratio of one (A, B, domain): A's and B's aggregate curves (mean normalised score over
    tasks) against env steps, and B drawn at step / k (dashed), which lies on A when B(s) = A(s/k) fits.

    ``curves`` and ``row`` (one row of the table, a mapping) come from
    :func:`analysis.efficiency.sample_efficiency_ratio`; ``units_note`` (how each source's steps became env steps,
    :func:`analysis.units.readings_note`) is printed under the axis.
    """
    a, b, domain = row["a"], row["b"], row["domain"]
    sub = curves[(curves["a"] == a) & (curves["b"] == b) & (curves["domain"] == domain)]
    if sub.empty:
        return _empty(f"no curves of {a} and {b} in {domain}")
    fig = Figure(figsize=(6.0, 4.2), layout="constrained")
    ax = fig.subplots()
    palette = colors([a, b])
    styles = {"a": (a, "-", f"{display_name(a)}"), "b": (b, "-", f"{display_name(b)}"),
              "b_rescaled": (b, "--", f"{display_name(b)} at step / k")}
    for curve, (alg, ls, label) in styles.items():
        c = sub[sub["curve"] == curve].sort_values("step")
        if not c.empty:
            ax.plot(c["step"], c["value"], ls=ls, color=palette[alg], label=label, lw=1.6)
    k = row["k"]
    if np.isfinite(k):
        title = (f"{domain}: k = {k:.2f} [{row['low']:.2f}, {row['high']:.2f}] — {display_name(b)} needs k× the "
                 f"env steps of {display_name(a)}")
    else:
        title = f"{domain}: k not estimated ({row['notes']})"
    ax.set_title(title, fontsize=9, wrap=True)
    ax.set_xlabel(f"env steps\n{units_note}", fontsize=8)
    ax.set_ylabel(f"mean normalised score ({count(row['n_tasks'], 'task')})")
    _millions(ax)
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize=8)
    return fig


def interval_plot(intervals: pd.DataFrame, domain: str = "All") -> Figure:
    """rliable's interval-estimate panel: IQM, mean, median and optimality gap with 95 % CIs, one row per algorithm."""
    sub = intervals[intervals["domain"] == domain]
    if sub.empty:
        return _empty(f"no interval estimates for domain {domain!r}")
    metrics = [m for m in METRIC_NAMES if m in set(sub["metric"])]
    algs = ordered(sub["algorithm"])[::-1]
    palette = colors(sub["algorithm"])
    fig = Figure(figsize=(3.0 * len(metrics), 0.45 * len(algs) + 1.2), layout="constrained")
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    for ax, metric in zip(axes, metrics):
        for y, alg in enumerate(algs):
            row = sub[(sub["algorithm"] == alg) & (sub["metric"] == metric)]
            if row.empty:
                continue
            r = row.iloc[0]
            ax.barh(y, r["high"] - r["low"], left=r["low"], height=0.6, color=palette[alg], alpha=0.75)
            ax.plot(r["value"], y, marker="o", ms=5, color=palette[alg], mec="black", clip_on=False)
        # a bar's left edge is "sticky" (no automatic margin): the lowest interval, and a dot on it, sat on the edge
        rows = sub[sub["metric"] == metric]
        pad_limits(ax, x=[*rows["low"], *rows["high"], *rows["value"]])
        ax.set_yticks(range(len(algs)), [display_name(a) for a in algs] if ax is axes[0] else [""] * len(algs))
        ax.set_title(METRIC_NAMES[metric])
        ax.set_xlabel("normalised score")
        ax.grid(axis="x", alpha=0.3)
    fig.supylabel("algorithm")
    n_tasks = int(sub["n_tasks"].max())
    fig.suptitle(_wrap(fig, f"{domain}: aggregate metrics with 95% stratified-bootstrap CIs ({count(n_tasks, 'task')})",
                       12))
    return fig


def performance_profile_plot(profiles: pd.DataFrame) -> Figure:
    """Score distributions (fraction of runs with normalised score > τ) with CI bands."""
    if profiles.empty:
        return _empty("no performance profiles")
    fig = Figure(figsize=(5.5, 3.8), layout="constrained")
    ax = fig.subplots()
    palette = colors(profiles["algorithm"])
    for alg in ordered(profiles["algorithm"]):
        p = profiles[profiles["algorithm"] == alg].sort_values("tau")
        ax.plot(p["tau"], p["fraction"], color=palette[alg], label=display_name(alg))
        ax.fill_between(p["tau"], p["low"], p["high"], color=palette[alg], alpha=0.2, lw=0)
    ax.set_xlabel("normalised score τ")
    ax.set_ylabel("fraction of runs with score > τ")
    ax.set_title(f"Performance profiles ({count(profiles['n_tasks'].max(), 'common task')})")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    return fig


def probability_of_improvement_plot(poi: pd.DataFrame) -> Figure:
    """P(algorithm > baseline) with 95 % CIs, one bar per (algorithm, baseline) row of ``poi``, coloured by the
    baseline: the candidate's rows first, then those of every other algorithm compared (plug-in algorithms,
    :func:`analysis.report.improvement_table`), each group in the paper's order."""
    if poi.empty:
        return _empty("no probability of improvement: no baseline shares a task with the candidate")
    candidates = list(dict.fromkeys(poi["algorithm"]))  # the table's order: the candidate's rows come first
    pairs = [(a, b) for a in candidates for b in ordered(poi.loc[poi["algorithm"] == a, "baseline"])][::-1]
    palette = colors(poi["baseline"])
    labels = [f"{display_name(a)} vs {display_name(b)}" for a, b in pairs]
    # long names (a plug-in's, a released copy's) take the panel's width: the figure grows so the title still fits
    width = max(5.5, 3.6 + 0.075 * max(len(t) for t in labels))
    fig = Figure(figsize=(width, 0.5 * len(pairs) + 1.3), layout="constrained")
    ax = fig.subplots()
    for y, (alg, base) in enumerate(pairs):
        r = poi[(poi["algorithm"] == alg) & (poi["baseline"] == base)].iloc[0]
        ax.barh(y, r["high"] - r["low"], left=r["low"], height=0.6, color=palette[base], alpha=0.75)
        ax.plot(r["value"], y, marker="o", ms=5, color=palette[base], mec="black", clip_on=False)
    ax.axvline(0.5, color="grey", ls="--", lw=1)
    ax.set_yticks(range(len(pairs)), labels)
    ax.set_xlim(-0.04, 1.04)  # a probability of 0 or 1 (and its dot) inside the panel, not on its edge
    candidate = display_name(candidates[0]) if len(candidates) == 1 else "algorithm"
    ax.set_xlabel(f"P({candidate} > baseline)")
    ax.set_ylabel("comparison")
    ax.set_title("Probability of improvement")
    ax.grid(axis="x", alpha=0.3)
    return fig


def per_task_curves(aligned: pd.DataFrame, tasks: Iterable[str] | None = None, ncols: int = 6,
                    value: str = "score", units_note: str = "x: env steps") -> Figure:
    """Fig. 16-20: per-task curves, the mean over seeds with a ±1 std band, one panel per task; the x unit
    (``units_note``, e.g. :func:`analysis.units.readings_note`) under the panels."""
    if aligned.empty:
        return _empty("no per-task curves: no evaluations")
    tasks = sorted(aligned["task"].unique()) if tasks is None else list(tasks)
    fig, axes = _grid(len(tasks), ncols, size=(2.8, 2.2))
    palette = colors(aligned["algorithm"])
    for ax, task in zip(axes, tasks):
        sub = aligned[aligned["task"] == task]
        for alg in ordered(sub["algorithm"]):
            stats = sub[sub["algorithm"] == alg].groupby("step")[value].agg(["mean", "std"]).fillna(0.0)
            low, high = stats["mean"] - stats["std"], stats["mean"] + stats["std"]
            if value == "score":  # a ±std band must not leave the 0-100 scale
                low, high = low.clip(0, 100), high.clip(0, 100)
            ax.plot(stats.index, stats["mean"], color=palette[alg], label=display_name(alg), lw=1.3)
            ax.fill_between(stats.index, low, high, color=palette[alg], alpha=0.2, lw=0)
        ax.set_title(task, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.set_xlabel("env steps", fontsize=7)
        ax.set_ylabel("normalised score" if value == "score" else value, fontsize=7)
        _millions(ax)
        ax.grid(alpha=0.3)
    if axes:
        _legend(fig, _Panels(axes, aligned["algorithm"]))
        fig.supxlabel(_wrap(fig, units_note, 8), fontsize=8)
    return fig


# ----------------------------------------------------------------------------------- diagnostics (fig. 3, 21-22)

def diagnostics_curves(train: pd.DataFrame, columns: Iterable[str] = ("cross_td_error", "behaviour_drift"),
                       smooth: int = 1) -> Figure:
    """Fig. 3: cross-TD error and policy drift over training (from train.csv), mean over runs ± 1 std, per algorithm.

    ``smooth`` > 1 averages that many consecutive log rows first. A column absent from train.csv (or empty in every
    run) gets no axes, only a panel saying it was not recorded by these runs (empty axes with ticks read as a plot of
    nothing); when no column was recorded the figure says only that. The y label names the quantity
    (:data:`DIAGNOSTIC_UNITS`); a quantity never negative has its band cut at 0, and one whose positive values span
    more than :data:`LOG_SCALE_DECADES` decades is drawn on a log axis (its band cut at the smallest value logged).
    """
    columns = list(columns)
    if train.empty:
        return _empty("no training logs (train.csv) to plot")

    def recorded(column: str) -> bool:
        return column in train.columns and bool(pd.to_numeric(train[column], errors="coerce").notna().any())

    if not any(recorded(c) for c in columns):
        return _empty(f"no {', '.join(repr(c) for c in columns)} in train.csv: not recorded by these runs")
    fig, axes = _grid(len(columns), len(columns), size=(4.2, 3.0))
    palette = colors(train["algorithm"])
    for ax, column in zip(axes, columns):
        title = DIAGNOSTIC_NAMES.get(column, column.replace("_", " "))
        if not recorded(column):
            message_panel(ax, f"no '{column}' in train.csv: not recorded by these runs", title=title)
            continue
        ax.set_title(title, fontsize=9, wrap=True)
        ax.set_xlabel("env steps (harness runs)")
        ax.set_ylabel(DIAGNOSTIC_UNITS.get(column, column.replace("_", " ")))
        _millions(ax)
        ax.grid(alpha=0.3)
        logged = pd.to_numeric(train[column], errors="coerce")
        logged = logged[np.isfinite(logged)]
        non_negative = bool((logged >= 0).all())
        positive = logged[logged > 0]
        log_y = (len(positive) > 0 and bool((logged > 0).all())
                 and np.log10(positive.max() / positive.min()) > LOG_SCALE_DECADES)
        floor = float(positive.min()) if log_y else 0.0
        for alg in ordered(train["algorithm"]):
            sub = train[(train["algorithm"] == alg)].dropna(subset=[column])
            if sub.empty:
                continue
            if smooth > 1:
                sub = sub.assign(**{column: sub.groupby(["task", "seed"])[column].transform(
                    lambda s: s.rolling(smooth, min_periods=1).mean())})
            stats = sub.groupby("step")[column].agg(["mean", "std"]).fillna(0.0)
            low, high = stats["mean"] - stats["std"], stats["mean"] + stats["std"]
            if non_negative:  # a ±std band must not suggest negative errors or distances
                low = low.clip(lower=floor)
            ax.plot(stats.index, stats["mean"], color=palette[alg], label=display_name(alg),
                    marker="o" if len(stats) <= 20 else None, ms=3)  # a short run logs a few points
            ax.fill_between(stats.index, low, high, color=palette[alg], alpha=0.2, lw=0)
        if log_y:
            ax.set_yscale("log")
            ax.set_ylabel(ax.get_ylabel() + ", log scale")
        elif non_negative:
            ax.set_ylim(bottom=0)
    _legend(fig, _Panels(axes, train["algorithm"]))
    return fig


# ------------------------------------------------------------------------------------------------ scaling (fig. 6)

MIN_SCALING_SIZES = 2
"""A scaling figure needs at least this many model sizes: one size is a point, not a trend."""


def too_few_sizes(n: int, sizes: Iterable[str], where: str = "") -> str:
    """The message a scaling panel shows instead of a curve of fewer than :data:`MIN_SCALING_SIZES` sizes."""
    listed = ", ".join(sizes)
    return (f"{where + ': ' if where else ''}{count(n, 'model size')}{f' ({listed})' if listed else ''}: a scaling "
            f"curve needs at least {MIN_SCALING_SIZES} sizes, so none is drawn")


def scaling_plot(scaling: pd.DataFrame) -> Figure:
    """Fig. 6: normalised score against world-model parameters, one line per algorithm and task set.

    ``scaling``: one row per run with ``algorithm, params`` (parameter count), ``task_set`` (e.g. 30, 80) and
    ``score``; points are means over runs with ±1 std error bars. Fewer than two model sizes are no curve: the
    figure then says how many it has (:data:`MIN_SCALING_SIZES`).
    """
    if scaling.empty:
        return _empty("no scaling runs")
    n_sizes = scaling["params"].nunique()
    if n_sizes < MIN_SCALING_SIZES:
        return _empty(too_few_sizes(n_sizes, [f"{p / 1e6:g}M" for p in sorted(scaling["params"].unique())]))
    fig = Figure(figsize=(5.8, 3.8), layout="constrained")
    ax = fig.subplots()
    palette = colors(scaling["algorithm"])
    styles = ["-", "--", ":", "-."]
    for i, task_set in enumerate(sorted(scaling["task_set"].unique(), key=str)):
        for alg in ordered(scaling["algorithm"]):
            s = scaling[(scaling["algorithm"] == alg) & (scaling["task_set"] == task_set)]
            if s.empty:
                continue
            stats = s.groupby("params")["score"].agg(["mean", "std"]).fillna(0.0).sort_index()
            ax.errorbar(stats.index, stats["mean"], yerr=stats["std"], color=palette[alg],
                        ls=styles[i % len(styles)], marker="o", capsize=3,
                        label=f"{display_name(alg)}, {task_set} tasks")
    ax.set_xscale("log")
    ticks = sorted(scaling["params"].unique())
    ax.set_xticks(ticks, [f"{p / 1e6:g}M" for p in ticks])
    ax.minorticks_off()
    means = scaling.groupby(["algorithm", "task_set", "params"])["score"].agg(["mean", "std"]).fillna(0.0)
    pad_limits(ax, x=ticks, y=[*(means["mean"] - means["std"]), *(means["mean"] + means["std"])])
    ax.set_xlabel("world-model parameters")
    ax.set_ylabel("normalised score")
    ax.set_title("Scaling")
    ax.grid(alpha=0.3, which="both")
    ax.legend(frameon=False, fontsize=8)
    return fig


# ----------------------------------------------------------------------------------------------- O2O (fig. 7)

def o2o_curves(aligned: pd.DataFrame, settings: Mapping[str, str]) -> Figure:
    """Fig. 7 (right): mean normalised score over the fine-tuning tasks, from scratch vs fine-tuned.

    ``settings`` maps a legend label to an algorithm label in ``aligned`` (e.g. ``{"from scratch": "mbdpo",
    "fine-tuned": "mbdpo-o2o"}``); the band is ±1 std over runs of the per-run mean across tasks.
    """
    missing = [alg for alg in settings.values() if alg not in set(aligned["algorithm"])]
    if missing:
        raise ValueError(f"O2O curves: no runs for {missing}; algorithms present: {sorted(aligned['algorithm'].unique())}")
    fig = Figure(figsize=(5.5, 3.6), layout="constrained")
    ax = fig.subplots()
    palette = sns.color_palette("tab10", n_colors=max(3, len(settings)))
    for i, (label, alg) in enumerate(settings.items()):
        sub = aligned[aligned["algorithm"] == alg]
        per_seed = sub.groupby(["seed", "step"])["score"].mean()
        stats = per_seed.groupby("step").agg(["mean", "std"]).fillna(0.0)
        ax.plot(stats.index, stats["mean"], color=palette[i],
                label=f"{label} ({count(sub['task'].nunique(), 'task')})")
        ax.fill_between(stats.index, stats["mean"] - stats["std"], stats["mean"] + stats["std"], color=palette[i],
                        alpha=0.2, lw=0)
    ax.set_xlabel("env steps")
    ax.set_ylabel("normalised score")
    ax.set_title("Offline-to-online: from scratch vs fine-tuned")
    _millions(ax)
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    return fig


# ----------------------------------------------------------------------------------------- ablations (fig. 8-10)

def ablation_plot(values: pd.DataFrame, parameter: str, label: str | None = None,
                  reference: Mapping[str, float] | None = None) -> Figure:
    """Fig. 8-10: final normalised score (mean over tasks and seeds, ±1 std over per-seed means) per value of a
    hyper-parameter (a ``values`` column such as ``agent.eta``, ``agent.diffusion_steps`` or ``agent.num_samples``).

    ``reference`` draws horizontal lines, e.g. ``{"TD-MPC2": 57.1}``.
    """
    if parameter not in values.columns:
        raise ValueError(f"ablation parameter {parameter!r} is not a column; columns: {sorted(values.columns)}")
    sub = values.dropna(subset=[parameter])
    if sub.empty:
        return _empty(f"no runs with {parameter!r} set")
    per_seed = sub.groupby([parameter, "seed"])["score"].mean()
    stats = per_seed.groupby(parameter).agg(["mean", "std"]).fillna(0.0).sort_index()
    fig = Figure(figsize=(5.0, 3.5), layout="constrained")
    ax = fig.subplots()
    positions = np.arange(len(stats))
    ax.bar(positions, stats["mean"], yerr=stats["std"], capsize=4, color=sns.color_palette("tab10")[0], alpha=0.8)
    ax.set_xticks(positions, [f"{v:g}" if isinstance(v, (int, float, np.number)) else str(v) for v in stats.index])
    for i, (name, level) in enumerate((reference or {}).items()):
        ax.axhline(level, color=sns.color_palette("tab10")[1 + i], ls="--", lw=1.2, label=name)
    if reference:
        ax.legend(frameon=False, loc="lower right")
    ax.set_xlabel(label or parameter)
    ax.set_ylabel("normalised score")
    ax.set_title(f"Ablation: {label or parameter} ({count(sub['task'].nunique(), 'task')})")
    ax.grid(axis="y", alpha=0.3)
    return fig


# -------------------------------------------------------------------------------------- task embedding (fig. 23)

def task_embedding_figure(embedding: pd.DataFrame, highlight: Iterable[str] = ()) -> Figure:
    """Fig. 23: 2-D t-SNE of task embeddings (``task, domain, x, y``), one marker per domain, ``highlight`` circled."""
    fig = Figure(figsize=(6, 5), layout="constrained")
    ax = fig.subplots()
    markers = {"MetaWorld": "o", "DMControl": "s"}  # the paper's: red circles MetaWorld, blue squares DMControl
    domains = _domains(embedding["domain"])  # plug-in domains and "?" too: a colour for each, cycling past Set2's 8
    palette = dict(zip(domains, sns.color_palette("Set2", n_colors=max(len(domains), 1))))
    palette.update({d: c for d, c in (("MetaWorld", "tab:red"), ("DMControl", "tab:blue")) if d in palette})
    for domain, sub in embedding.groupby("domain"):
        ax.scatter(sub["x"], sub["y"], marker=markers.get(domain, "^"), color=palette[domain], label=domain, s=28)
    for task in highlight:
        row = embedding[embedding["task"] == task]
        if not row.empty:
            ax.scatter(row["x"], row["y"], s=260, facecolors="none", edgecolors="black", lw=1.5)
            ax.annotate(task, (row["x"].iloc[0], row["y"].iloc[0]), textcoords="offset points", xytext=(8, 8))
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"Task embeddings (t-SNE, {count(len(embedding), 'task')})")
    ax.legend(frameon=False)
    return fig
