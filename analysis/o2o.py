"""Offline-to-online fine-tuning (fig. 7): fine-tuned vs from-scratch online runs, per fine-tuning task.

Input is the tidy online evaluation table (:data:`analysis.load.EVAL_COLUMNS`, steps in env steps). The O2O plan
(workflow/scripts/plan.py ``expand_o2o``) names its runs ``<algo>-finetune`` (started from the pretrained
checkpoint, ``init.checkpoint``) and ``<algo>-scratch`` (the same config without it), on the same tasks and seeds
(the plan's are held out from pretraining); the pretraining run ``<algo>-o2o-pretrain`` is offline and never in
this table. Each ``<algo>-finetune`` family is paired with ``<algo>-scratch`` of the same ``<algo>``, task by task,
on the seeds both have: a comparison of fine-tuning with learning from scratch is only fair on the same seeds (the
same env and evaluation seeds), so a seed one family has and the other lacks is not used, and neither is a task or a
family without its partner. Every such run becomes a ``problems`` row of kind ``unpaired`` (:data:`UNPAIRED`, one row
per run left out) — never silently dropped — as does a family split by differing configs (``name@hash``).

Whether a task is **held-out** is read from the fine-tuning runs' run.json, never assumed from the plan
(:func:`pretraining_status`): ``init_new_task`` (true: the task was not in the pretrained checkpoint's task table)
or, failing that, ``init_pretrained_tasks``. A task the pretraining saw is labelled "seen in pretraining"; one
whose runs do not record it "pretraining set not recorded". Column ``pretraining`` of the table and the curves
carries the label; the aggregate's (``All``) says what its tasks are, and the figures' titles say it too.

Per (algorithm, task), both families are aligned on one env-step grid (nearest previous evaluation,
:func:`analysis.load.align`); a curve point is the **mean over seeds** of the normalised score with a 95 %
percentile bootstrap CI over seeds (:func:`analysis.stats.stratified_bootstrap`, the task's seeds resampled). The
aggregate over the tasks is the **IQM** over tasks × seeds (as the main aggregate curves;
:func:`analysis.stats.sample_efficiency_curves`, stratified bootstrap over seeds within tasks). The table
(:data:`TABLE_COLUMNS`) gives per task the final scores of both (the last grid step every paired run reached), their
difference (fine-tune − scratch, CI from independent bootstraps of both), and ``reach_step``: the first grid step at
which fine-tuning's mean curve reaches scratch's final mean score (NaN if it never does) — how much of the budget
the pretrained start saves.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from analysis import figures as F
from analysis import stats as S
from analysis.load import PROBLEM_COLUMNS, align, default_grid

FINETUNE, SCRATCH = "finetune", "scratch"
SETTINGS = {FINETUNE: "fine-tuned", SCRATCH: "from scratch"}
"""Run-name suffix of each O2O family → its label in figures and tables."""
UNPAIRED = "unpaired"
"""Problem kind of a fine-tune/scratch run left out of the O2O comparison (no partner run of the same seed)."""
ALL_TASKS = "All"
"""``task`` of the aggregate rows (every paired task of the algorithm)."""
HELD_OUT, SEEN, NOT_RECORDED = "held-out", "seen in pretraining", "pretraining set not recorded"
"""Column ``pretraining``: a task outside the pretrained checkpoint's tasks, one inside them, or one whose
fine-tuning runs do not say (run.json without ``init_new_task`` / ``init_pretrained_tasks``)."""
FAMILY = re.compile(r"^(?P<algo>.+)-(?P<setting>finetune|scratch)(?P<split>@.+)?$")
TABLE_COLUMNS = ["algorithm", "task", "pretraining", "statistic", "n_tasks", "n_seeds", "step", "finetune",
                 "finetune_low", "finetune_high", "scratch", "scratch_low", "scratch_high", "difference",
                 "difference_low", "difference_high", "reach_step", "reach_fraction", "notes"]
CURVE_COLUMNS = ["algorithm", "setting", "family", "task", "pretraining", "statistic", "step", "value", "low", "high",
                 "n_tasks", "n_runs"]
X_LABEL = "env steps (online)"
Y_LABEL = "normalised score (0-100)"


@dataclass
class O2OResult:
    """What :func:`o2o_analysis` computed: the table, the curves and the runs it could not pair."""

    table: pd.DataFrame
    curves: pd.DataFrame
    problems: pd.DataFrame

    @property
    def empty(self) -> bool:
        return self.table.empty


def family_of(label: str) -> tuple[str, str, bool] | None:
    """``"mbdpo-finetune"`` → (``mbdpo``, ``finetune``, False); a split label ``"mbdpo-scratch@ab12"`` → (…, True);
    any other label (``mbdpo``, ``mbdpo (published)``) → None."""
    match = FAMILY.match(str(label))
    if match is None:
        return None
    return match["algo"], match["setting"], match["split"] is not None


def has_o2o(evals: pd.DataFrame) -> bool:
    """Whether ``evals`` holds any fine-tune or scratch family (then :func:`o2o_analysis` has something to say)."""
    return not evals.empty and any(family_of(a) is not None for a in evals["algorithm"].unique())


def _unpaired(runs: pd.DataFrame, message: str) -> list[dict]:
    return [{"kind": UNPAIRED, "path": r.path, "algorithm": r.algorithm, "task": r.task, "seed": int(r.seed),
             "message": message} for r in runs.itertuples()]


def pair_runs(evals: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(paired evaluations, problems): the evaluations of fine-tune/scratch runs that have a partner — same
    algorithm, task and seed in the other family — with columns ``algo`` and ``setting`` added, and one ``unpaired``
    problem per fine-tune/scratch run that has none (the message says what is missing)."""
    labels = {a: family_of(a) for a in evals["algorithm"].unique()}
    labels = {a: f for a, f in labels.items() if f is not None}
    if not labels:
        return evals.iloc[0:0].assign(algo=[], setting=[]), pd.DataFrame(columns=PROBLEM_COLUMNS)
    sub = evals[evals["algorithm"].isin(list(labels))].copy()
    sub["algo"] = sub["algorithm"].map(lambda a: labels[a][0])
    sub["setting"] = sub["algorithm"].map(lambda a: labels[a][1])
    runs = sub.groupby(["algorithm", "algo", "setting", "task", "seed"], as_index=False)["path"].first()
    problems: list[dict] = []
    split = runs["algorithm"].map(lambda a: labels[a][2])
    problems += _unpaired(runs[split], "the family's seeds differ in config (split by config hash, problem kind "
                          "mixed_config); not compared with its partner family")
    runs = runs[~split]
    keep = []
    for (algo, task), group in runs.groupby(["algo", "task"]):
        seeds = {s: set(g["seed"]) for s, g in group.groupby("setting")}
        common = seeds.get(FINETUNE, set()) & seeds.get(SCRATCH, set())
        for setting, other in ((FINETUNE, SCRATCH), (SCRATCH, FINETUNE)):
            mine = group[group["setting"] == setting]
            alone = mine[~mine["seed"].isin(common)]
            if alone.empty:
                continue
            if other not in seeds:
                why = f"no {algo}-{other} run on {task}"
            else:
                why = f"{algo}-{other} on {task} has seeds {sorted(seeds[other])}, not this one"
            problems += _unpaired(alone, f"{why}: left out of the O2O comparison (fine-tune and scratch are "
                                  "compared on the same seeds)")
        keep += [(algo, task, s) for s in common]
    keys = set(keep)
    paired = sub[[(a, t, s) in keys for a, t, s in zip(sub["algo"], sub["task"], sub["seed"])]]
    return paired.reset_index(drop=True), pd.DataFrame(problems, columns=PROBLEM_COLUMNS)


def pretraining_status(runs: pd.DataFrame | None) -> dict[tuple[str, str], str]:
    """(algo, task) → :data:`HELD_OUT`, :data:`SEEN` or :data:`NOT_RECORDED`, from the ``<algo>-finetune`` runs of
    ``runs`` (:func:`analysis.load.load_runs`' per-run table, with run.json's ``init_new_task`` and
    ``init_pretrained_tasks``). A run's task is held-out when ``init_new_task`` is true (its embedding row was
    appended: the checkpoint never saw it), seen when false; without that key, by ``init_pretrained_tasks``. A task
    is held-out only when every fine-tuning run of it says so: one run whose checkpoint saw it makes it "seen in
    pretraining"; a pair absent from the result (no ``runs``, no fine-tuning run) is not recorded."""
    if runs is None or runs.empty or "algorithm" not in runs.columns:
        return {}
    found: dict[tuple[str, str], set[str]] = {}
    for r in runs.to_dict("records"):
        family = family_of(r["algorithm"])
        if family is None or family[1] != FINETUNE:
            continue
        new, pretrained = r.get("init_new_task"), r.get("init_pretrained_tasks")
        if isinstance(new, (bool, np.bool_)):
            status = HELD_OUT if new else SEEN
        elif isinstance(pretrained, (list, tuple)):
            status = SEEN if r["task"] in pretrained else HELD_OUT
        else:
            status = NOT_RECORDED
        found.setdefault((family[0], r["task"]), set()).add(status)
    return {key: SEEN if SEEN in s else HELD_OUT if s == {HELD_OUT} else NOT_RECORDED for key, s in found.items()}


def aggregate_status(statuses: list[str]) -> str:
    """Column ``pretraining`` of an aggregate over tasks of these statuses: the status when all agree, else how many
    tasks of each (``1 held-out, 1 seen in pretraining``)."""
    kinds = [k for k in (HELD_OUT, SEEN, NOT_RECORDED) if k in statuses]
    if len(kinds) == 1:
        return kinds[0]
    return ", ".join(f"{statuses.count(k)} {k}" for k in kinds)


def seed_ci(matrix: np.ndarray, reps: int = 2000, seed: int = 0,
            confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(mean, low, high, replicates) over the seeds of a seeds × steps matrix of one task: the mean over seeds
    and a percentile CI from resampling seeds (:func:`analysis.stats.stratified_bootstrap` with the steps as a
    trailing axis, so a replicate keeps each seed's whole curve). ``replicates`` (reps × steps) lets a caller
    bootstrap a difference."""
    matrix = np.asarray(matrix, dtype=float)
    boot = S.stratified_bootstrap(matrix[:, None, :], reps, np.random.default_rng(seed))[:, :, 0, :].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.percentile(boot, [100 * alpha, 100 * (1 - alpha)], axis=0)
    return matrix.mean(axis=0), low, high, boot


def first_reach(steps: np.ndarray, curve: np.ndarray, target: float) -> float:
    """The first of ``steps`` at which ``curve`` ≥ ``target``; NaN when it never does."""
    hit = np.flatnonzero(np.asarray(curve, dtype=float) >= target)
    return float(steps[hit[0]]) if len(hit) else float("nan")


def _matrix(frame: pd.DataFrame, steps: np.ndarray) -> np.ndarray:
    """seeds × steps of one family on one task (aligned on ``steps``; every seed has every step)."""
    wide = frame.pivot_table(index="seed", columns="step", values="score", aggfunc="first")
    return wide.reindex(columns=steps).to_numpy(float)


def o2o_analysis(evals: pd.DataFrame, reps: int = 2000, seed: int = 0, metric: str = "iqm",
                 runs: pd.DataFrame | None = None) -> O2OResult:
    """Fig. 7's numbers from the tidy online table (see the module docstring): the per-task and aggregate table
    (``TABLE_COLUMNS``), the curves (``CURVE_COLUMNS``: per task the mean over seeds, ``task`` ``All`` the
    ``metric`` over tasks × seeds) and the ``unpaired`` problems. Grid steps that not every paired run of a task
    reached are not used for that task (a curve of unequal seeds would mix them); the table's ``notes`` say when
    the final step is short of the budget. ``runs`` (:func:`analysis.load.load_runs`' per-run table) says which
    tasks the pretraining saw (:func:`pretraining_status`); without it every task's ``pretraining`` is
    :data:`NOT_RECORDED`."""
    status = pretraining_status(runs)
    paired, problems = pair_runs(evals)
    if paired.empty:
        return O2OResult(pd.DataFrame(columns=TABLE_COLUMNS), pd.DataFrame(columns=CURVE_COLUMNS), problems)
    aligned, _ = align(paired.drop(columns=["algo", "setting"]), default_grid(paired))
    aligned = aligned.merge(paired[["algorithm", "algo", "setting"]].drop_duplicates(), on="algorithm")
    rows, curves, kept = [], [], []
    for (algo, task), group in aligned.groupby(["algo", "task"], sort=True):
        n_runs = group.groupby(["setting", "seed"]).ngroups
        counts = group.groupby("step").size()
        steps = np.sort(counts[counts == n_runs].index.to_numpy())  # steps every paired run has
        if len(steps) == 0:
            continue
        group = group[group["step"].isin(steps)]
        kept.append(group)
        stats = {}
        for i, setting in enumerate((FINETUNE, SCRATCH)):  # independent draws: the difference's CI needs them
            frame = group[group["setting"] == setting]
            mean, low, high, boot = seed_ci(_matrix(frame, steps), reps, seed + i)
            stats[setting] = (mean, boot)
            curves += [{"algorithm": algo, "setting": setting, "family": f"{algo}-{setting}", "task": task,
                        "pretraining": status.get((algo, task), NOT_RECORDED), "statistic": "mean over seeds",
                        "step": int(s), "value": m, "low": lo, "high": hi, "n_tasks": 1,
                        "n_runs": frame["seed"].nunique()} for s, m, lo, hi in zip(steps, mean, low, high)]
        (ft, ft_boot), (sc, sc_boot) = stats[FINETUNE], stats[SCRATCH]
        diff_boot = ft_boot[:, -1] - sc_boot[:, -1]
        budget = int(group["budget"].max())
        reach = first_reach(steps, ft, sc[-1])
        rows.append({"algorithm": algo, "task": task, "pretraining": status.get((algo, task), NOT_RECORDED),
                     "statistic": "mean over seeds", "n_tasks": 1,
                     "n_seeds": group["seed"].nunique(), "step": int(steps[-1]), "finetune": ft[-1],
                     "finetune_low": float(np.percentile(ft_boot[:, -1], 2.5)),
                     "finetune_high": float(np.percentile(ft_boot[:, -1], 97.5)), "scratch": sc[-1],
                     "scratch_low": float(np.percentile(sc_boot[:, -1], 2.5)),
                     "scratch_high": float(np.percentile(sc_boot[:, -1], 97.5)), "difference": ft[-1] - sc[-1],
                     "difference_low": float(np.percentile(diff_boot, 2.5)),
                     "difference_high": float(np.percentile(diff_boot, 97.5)), "reach_step": reach,
                     "reach_fraction": reach / steps[-1] if steps[-1] else float("nan"),
                     "notes": "" if steps[-1] >= budget else f"final step {int(steps[-1]):,} < budget {budget:,} "
                                                                 "(runs in progress?): not a final result"})
    table = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    if kept:
        both = pd.concat(kept, ignore_index=True)
        agg, agg_rows = _aggregate(both, reps, seed, metric, status)
        curves += agg
        table = pd.concat([table, pd.DataFrame(agg_rows, columns=TABLE_COLUMNS)], ignore_index=True)
    return O2OResult(table, pd.DataFrame(curves, columns=CURVE_COLUMNS), problems)


def _aggregate(aligned: pd.DataFrame, reps: int, seed: int, metric: str,
               status: dict[tuple[str, str], str]) -> tuple[list[dict], list[dict]]:
    """Curves and table rows of ``metric`` over every paired task × seed, per algorithm and setting, at the grid
    steps every task of the algorithm has (so that the aggregate does not change its task set along the x axis);
    ``pretraining`` says what those tasks are (:func:`aggregate_status`)."""
    curves, rows = [], []
    name = f"{F.METRIC_NAMES.get(metric, metric)} over tasks × seeds"
    for algo, group in aligned.groupby("algo"):
        pooled = aggregate_status([status.get((algo, t), NOT_RECORDED) for t in sorted(group["task"].unique())])
        per_task = group.groupby("step")["task"].nunique()
        steps = per_task[per_task == group["task"].nunique()].index
        sub = group[group["step"].isin(steps)].assign(pool=ALL_TASKS)
        table = S.sample_efficiency_curves(sub, metric=metric, reps=reps, seed=seed, group="pool")
        finals = {}
        for r in table.itertuples():
            setting = family_of(r.algorithm)[1]
            curves.append({"algorithm": algo, "setting": setting, "family": r.algorithm, "task": ALL_TASKS,
                           "pretraining": pooled, "statistic": name, "step": r.step, "value": r.value, "low": r.low,
                           "high": r.high, "n_tasks": r.n_tasks, "n_runs": r.n_runs})
        for setting in (FINETUNE, SCRATCH):
            c = table[table["algorithm"].map(lambda a, s=setting: family_of(a)[1] == s)].sort_values("step")
            finals[setting] = c
        ft, sc = finals[FINETUNE], finals[SCRATCH]
        if ft.empty or sc.empty:
            continue
        last = int(min(ft["step"].max(), sc["step"].max()))
        f_row, s_row = ft[ft["step"] == last].iloc[0], sc[sc["step"] == last].iloc[0]
        reach = first_reach(ft["step"].to_numpy(), ft["value"].to_numpy(), float(s_row["value"]))
        rows.append({"algorithm": algo, "task": ALL_TASKS, "pretraining": pooled, "statistic": name,
                     "n_tasks": int(f_row["n_tasks"]),
                     "n_seeds": int(group["seed"].nunique()), "step": last, "finetune": f_row["value"],
                     "finetune_low": f_row["low"], "finetune_high": f_row["high"], "scratch": s_row["value"],
                     "scratch_low": s_row["low"], "scratch_high": s_row["high"],
                     "difference": f_row["value"] - s_row["value"], "difference_low": np.nan,
                     "difference_high": np.nan, "reach_step": reach,
                     "reach_fraction": reach / last if last else float("nan"),
                     "notes": "difference CI: see the per-task rows (the aggregate's CIs are per setting)"})
    return curves, rows


def _panel(ax, curves: pd.DataFrame, palette: dict) -> None:
    for algo in F.ordered(curves["algorithm"]):
        for setting, style in ((FINETUNE, "-"), (SCRATCH, "--")):
            c = curves[(curves["algorithm"] == algo) & (curves["setting"] == setting)].sort_values("step")
            if c.empty:
                continue
            ax.plot(c["step"], c["value"], color=palette[algo], ls=style, lw=1.6,
                    label=f"{F.display_name(algo)} {SETTINGS[setting]}")
            ax.fill_between(c["step"], c["low"].clip(0, 100), c["high"].clip(0, 100), color=palette[algo],
                            alpha=0.15 if setting == FINETUNE else 0.08, lw=0)
    ax.set_xlabel(X_LABEL)
    ax.set_ylim(-2, 102)
    F._millions(ax)
    ax.grid(alpha=0.3)


def aggregate_title(curves: pd.DataFrame) -> str:
    """What the aggregate's tasks are, for a title: "all held-out (2 tasks)" only when every task is held-out
    (column ``pretraining``); else "all seen in pretraining (2 tasks)", "all 2 tasks (1 held-out, 1 seen in
    pretraining)" or "all 2 tasks (pretraining set not recorded)". ``curves``: the aggregate's rows."""
    n = int(curves["n_tasks"].max())
    label = str(curves["pretraining"].iloc[0]) if "pretraining" in curves.columns else NOT_RECORDED
    if label in (HELD_OUT, SEEN):
        return f"all {label} ({F.count(n, 'task')})"
    return f"all {F.count(n, 'task')} ({label})"


def o2o_curves_figure(curves: pd.DataFrame, ncols: int = 4) -> Figure:
    """Fig. 7: one panel per fine-tuning task (mean over seeds, 95 % CI band), titled with whether the pretraining
    saw it (column ``pretraining``), and a last panel aggregating them (IQM over tasks × seeds); colour =
    algorithm, fine-tuned solid, from scratch dashed. ``curves`` is :func:`o2o_analysis`' ``curves``."""
    if curves.empty:
        return F._empty("no paired fine-tune / scratch runs")
    tasks = sorted(set(curves["task"]) - {ALL_TASKS})
    panels = tasks + ([ALL_TASKS] if (curves["task"] == ALL_TASKS).any() else [])
    fig, axes = F._grid(len(panels), ncols, size=(3.2, 2.6))
    palette = F.colors(curves["algorithm"])
    for ax, task in zip(axes, panels):
        sub = curves[curves["task"] == task]
        _panel(ax, sub, palette)
        if task == ALL_TASKS:
            ax.set_title("\n".join(textwrap.wrap(aggregate_title(sub), 34)), fontsize=9)  # fits its panel
            ax.set_ylabel(sub["statistic"].iloc[0].split(" over")[0] + " " + Y_LABEL, fontsize=8)
        else:
            status = sub["pretraining"].iloc[0] if "pretraining" in sub.columns else NOT_RECORDED
            ax.set_title(f"{task}\n{status}, {F.count(sub['n_runs'].max(), 'seed')}", fontsize=9)
            ax.set_ylabel("mean " + Y_LABEL, fontsize=8)
    F._legend(fig, axes[-1])
    return fig


def o2o_aggregate_figure(curves: pd.DataFrame) -> Figure:
    """Fig. 7 (the aggregate alone, larger): IQM normalised score over the tasks × seeds against online env steps,
    fine-tuned solid vs from scratch dashed, 95 % CI bands; the title says whether the tasks were held out
    (:func:`aggregate_title`)."""
    sub = curves[curves["task"] == ALL_TASKS]
    if sub.empty:
        return F._empty("no paired fine-tune / scratch runs")
    fig = Figure(figsize=(5.6, 3.8), layout="constrained")
    ax = fig.subplots()
    _panel(ax, sub, F.colors(sub["algorithm"]))
    ax.set_title(F._wrap(fig, f"Offline-to-online: {aggregate_title(sub)}", 13))  # a mixed set's title is long
    ax.set_ylabel(sub["statistic"].iloc[0].split(" over")[0] + " " + Y_LABEL)
    F._legend(fig, ax)
    return fig
