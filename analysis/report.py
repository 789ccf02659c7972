"""``analyze``: run files and/or released curves in, the paper's tables and figures out (the CLI and the workflow call it).

Layout of ``OUT``::

    tables/per_domain.{csv,md,tex}        algorithm, domain, n_tasks, step, mean, iqm, iqm_low, iqm_high, … (0-100)
    tables/per_domain_paper.{csv,md,tex}  the paper's layout: domains × algorithms, "mean [95% CI]"
    tables/interval_estimates.csv         every metric × domain × algorithm with CIs
    tables/probability_of_improvement.{csv,md,tex}, tables/performance_profiles.csv, tables/aggregate_curves.csv
    tables/training_time.{csv,md,tex}     (tab. 1; own runs only)
    tables/step_units.{csv,md}            each source's step unit and how it became env steps (FIDELITY.md D1)
    tables/efficiency.{csv,md,tex}        sample-efficiency ratio k per A:B pair and domain, tables/efficiency_curves.csv
    tables/problems.csv, tables/alignment_dropped.csv   what was missing, corrupt, non-finite, split or dropped
    figures/*.png                         aggregate curves, interval estimates, profiles, P(improvement),
                                          per-task curves per domain, cross-TD error / policy drift,
                                          efficiency_<A>_vs_<B>_<domain>.png
    tables/offline_scores.csv             offline runs (format 3): each run's final evaluation per task
    tables/offline_curves.csv, figures/offline_curves.png   offline score vs gradient updates per algorithm × size
    tables/scaling.{csv,md,tex}, figures/scaling.png        fig. 6 from offline runs (figure: ≥ 2 model sizes);
                                          an online model-size sweep then writes scaling_single_task.*
    claims.md, claims.csv, figures/claims.png   the claims ledger (analysis/ledger.py): each claim of the paper,
                                          its verdict, evidence and what would decide it; summary.md opens with it
    summary.md                            what was read, what was written, what is missing, the step units

Every step axis of the online analysis is in env steps (offline runs: gradient updates, in their own tables and
figures, never mixed with env steps); the step-unit reading of each source is in the captions and summary.md.
:func:`analyze_both_units` runs the whole analysis once per reading of the uncertain folders (mbdpo: agent / env)
into ``OUT/units-agent/`` and ``OUT/units-env/``, with ``OUT/tables/efficiency_by_unit.*`` side by side.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import efficiency as E
from analysis import ledger as L
from analysis import figures as F
from analysis import o2o as O2O
from analysis import offline as O
from analysis import stats as S
from analysis import tables as T
from analysis import units as U
from analysis.load import (
    AnalysisInputError,
    RunSet,
    align,
    default_grid,
    load_published,
    load_runs,
    missing_steps,
    plugin_algorithms,
    values_at,
)
from analysis.load import PROBLEM_COLUMNS

PUBLISHED_SUFFIX = " (published)"
# The paper's ablations (fig. 8-10): config key → axis label. Both energy weights are listed because the released
# code's classifier energy uses η and the paper's InfoNCE energy λ (METHOD.md).
ABLATION_PARAMETERS = {"agent.eta": "energy factor η (classifier)", "agent.energy_lambda": "energy factor λ (InfoNCE)",
                       "agent.diffusion_steps": "diffusion steps T", "agent.num_samples": "Monte Carlo samples N"}


SCALES = {"smoke": "smoke scale: not comparable to the paper's numbers", "paper": None}
"""``analyze(scale=...)``: the line a scale puts at the top of summary.md and of every figure (``paper``: none)."""
SMOKE_NOTE = SCALES["smoke"]


def scale_note(scale: str | None = None, note: str | None = None) -> str | None:
    """The note of ``scale`` (:data:`SCALES`) and/or a free ``note``, joined; None when there is neither."""
    if scale is not None and scale not in SCALES:
        raise AnalysisInputError(f"scale {scale!r}: expected one of {', '.join(SCALES)}")
    parts = [t for t in (SCALES.get(scale) if scale else None, note) if t and t.strip()]
    return "; ".join(p.strip() for p in parts) or None


SERIOUS_PROBLEMS = ("corrupt", "non_finite", "missing_step", "incomplete", "missing")
"""Problem kinds that mean results are missing or wrong (not merely relabelled); ``analyze --strict`` fails on them."""


def serious_problems(problems: pd.DataFrame) -> int:
    """How many rows of ``problems`` are of a :data:`SERIOUS_PROBLEMS` kind."""
    return 0 if problems.empty else int(problems["kind"].isin(SERIOUS_PROBLEMS).sum())


@dataclass
class AnalysisResult:
    out: Path
    per_domain: pd.DataFrame
    problems: pd.DataFrame
    dropped: pd.DataFrame
    written: list[Path] = field(default_factory=list)
    efficiency: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=E.EFFICIENCY_COLUMNS))
    step_units: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=U.UNITS_COLUMNS))


def gather(runs: str | Path | None = None, published: str | Path | None = None,
           algorithms: list[str] | None = None, expected: list[tuple[str, str, int]] | None = None,
           step_units: Mapping[str, str] | Iterable[str] | None = None) -> RunSet:
    """Own runs and/or released curves in one :class:`RunSet`; with both, released ones are labelled
    ``"<algorithm> (published)"`` so they are never averaged with ours. ``expected`` (name, task, seed) limits our
    runs to those (a workflow config's grid; others in the folder are ignored) and reports the absent ones.
    ``step_units`` overrides released folders' step units (:func:`analysis.load.load_published`); every source
    ends up in env steps (FIDELITY.md D1) and ``RunSet.step_units`` lists each source's reading. Offline runs
    (``RunSet.offline``, steps in gradient updates) are read beside the online ones; ``expected`` names online runs
    and does not filter them, ``algorithms`` does (by their algorithm label, e.g. ``mbdpo``). Only when neither
    online nor offline evaluations are found is it an error."""
    if runs is None and published is None:
        raise AnalysisInputError("nothing to analyse: give a runs directory (--runs) and/or released curves "
                                 "(--published)")
    result = RunSet(pd.DataFrame(columns=[]))
    if runs is not None:
        result = load_runs(runs, expected=expected)
        if expected is not None:
            wanted = {(n, t, int(s)) for n, t, s in expected}
            for name in ("evals", "runs", "train"):
                frame = getattr(result, name)
                if not frame.empty:
                    keys = zip(frame["algorithm"].str.split("@").str[0], frame["task"], frame["seed"].astype(int))
                    setattr(result, name, frame[[k in wanted for k in keys]].reset_index(drop=True))
    if published is not None:
        pub = load_published(published, algorithms, step_units)
        if runs is not None:
            for frame in (pub.evals, pub.problems, pub.step_units):
                frame["algorithm"] = frame["algorithm"].astype(str) + PUBLISHED_SUFFIX
        result = result + pub if runs is not None else pub
    if algorithms is not None:
        for name in ("evals", "runs", "train", "problems", "step_units", "offline", "offline_runs"):
            frame = getattr(result, name)
            if frame.empty or "algorithm" not in frame.columns:
                continue
            base = frame["algorithm"].astype(str).str.replace(PUBLISHED_SUFFIX, "", regex=False).str.split("@").str[0]
            setattr(result, name, frame[base.isin(algorithms)].reset_index(drop=True))
    if result.evals.empty and result.offline.empty:
        found = ""
        if runs is not None and not result.problems.empty:
            kinds = result.problems.groupby("kind").size()
            found = ("; the run folders read: " + ", ".join(f"{n} {kind}" for kind, n in kinds.items()) + " ("
                     + "; ".join(f"{r.path}: {r.message}" for r in result.problems.head(3).itertuples())
                     + (", ..." if len(result.problems) > 3 else "") + ")")
        raise AnalysisInputError(f"no evaluations found (runs={runs}, published={published}"
                                 + (f", algorithms={algorithms}" if algorithms else "") + ")" + found)
    return result


def analyze(out: str | Path, runs: str | Path | None = None, published: str | Path | None = None,
            at_step: int | None = None, algorithms: list[str] | None = None, candidate: str = "mbdpo",
            reps: int = 2000, seed: int = 0, per_task: bool = True,
            expected: list[tuple[str, str, int]] | None = None,
            step_units: Mapping[str, str] | Iterable[str] | None = None,
            efficiency: Iterable[str] | Iterable[tuple[str, str]] | None = None, scale: str | None = None,
            note: str | None = None, claims: bool = True, cost: L.CostModel | None = None) -> AnalysisResult:
    """Regenerate the tables and figures under ``out`` (see the module docstring for the layout).

    ``scale="smoke"`` (config ``analysis.scale``; the embedded default) and/or a free ``note`` put a line at the top
    of summary.md and of every figure (:func:`scale_note`): a smoke-scale run is not a result.

    ``step_units`` overrides released folders' step units ({folder: unit} or ``["mbdpo=env"]``; FIDELITY.md D1);
    ``efficiency`` lists the A:B pairs of the sample-efficiency ratio (``"mbdpo:tdmpc2"`` or tuples; default
    mbdpo:tdmpc2 when both are present; an empty list computes none).

    ``claims`` (default) also writes the claims ledger (:mod:`analysis.ledger`: claims.md, claims.csv,
    figures/claims.png) from the same inputs, every step-unit reading of the released curves included, and puts it
    at the top of summary.md; ``cost`` is the workflow's cost model for its estimates (none: no hours).
    """
    out = Path(out)
    banner = scale_note(scale, note)

    def save(fig, path: Path) -> Path:
        return F.save(F.mark(fig, banner), path)

    pairs = None if efficiency is None else [p if isinstance(p, tuple) else E.parse_pairs([p])[0] for p in efficiency]
    data = gather(runs, published, algorithms, expected, step_units)
    evals = data.evals
    present = sorted(evals["algorithm"].unique())
    pairs = E.default_pairs(present) if pairs is None else pairs
    absent = sorted({x for pair in pairs for x in pair} - set(present))
    if absent:  # before the statistics: a typo should not cost the whole analysis
        raise AnalysisInputError(f"--efficiency: no evaluations of {', '.join(map(repr, absent))}; algorithms "
                                 f"present: {', '.join(present)}")
    written: list[Path] = []
    tables, figs = out / "tables", out / "figures"
    units_note = U.readings_note(data.step_units)
    written += T.write_table(data.step_units, tables / "step_units",
                             "Step unit of each source; every figure and table is in env steps (FIDELITY.md D1)",
                             formats=("csv", "md"))

    online_scaling = None
    o2o_lines: list[str] = []
    plugins = plugin_algorithms(data.runs)
    if not evals.empty:
        values, dropped_at, early = table_values(evals, at_step)
        steps = values.groupby("domain")["step"].first().to_dict()
        intervals = S.interval_estimates(values, reps=reps, seed=seed)
        per_domain = T.per_domain_table(intervals, steps)
        task_sets = S.aggregate_tasks(values)  # summary.md says which tasks each row aggregates
        written += T.write_table(per_domain, tables / "per_domain",
                                 "Normalised score (0-100) per domain: mean and IQM with 95% stratified-bootstrap CIs, "
                                 f"at env step `step`. Step readings: {units_note}")
        written += T.write_table(T.paper_domain_table(per_domain), tables / "per_domain_paper",
                                 "Mean normalised score per domain [95% CI], at each domain's env-step budget. "
                                 f"Step readings: {units_note}")
        written += T.write_table(intervals, tables / "interval_estimates", formats=("csv",))
        fig_domain = "All" if "All" in set(intervals["domain"]) else intervals["domain"].iloc[0]
        written.append(save(F.interval_plot(intervals, fig_domain), figs / "interval_estimates.png"))
        for domain in sorted(set(intervals["domain"]) - {"All"}):
            written.append(save(F.interval_plot(intervals, domain), figs / f"interval_estimates_{_slug(domain)}.png"))

        profiles = S.performance_profiles(values, reps=reps, seed=seed)
        written += T.write_table(profiles, tables / "performance_profiles", formats=("csv",))
        written.append(save(F.performance_profile_plot(profiles), figs / "performance_profiles.png"))

        algs = set(values["algorithm"])
        if len(algs) > 1 and (candidate in algs or algs & set(plugins)):
            poi = improvement_table(values, candidate, plugins, reps=reps, seed=seed)
            compared = ", ".join(a for a in dict.fromkeys([candidate, *plugins]) if a in algs)
            written += T.write_table(poi, tables / "probability_of_improvement",
                                     f"P(algorithm > baseline) on the tasks both have, 95% CIs; algorithms: {compared}"
                                     + (" (plug-in algorithms against every other)" if algs & set(plugins) else ""),
                                     floatfmt=".3f")
            written.append(save(F.probability_of_improvement_plot(poi), figs / "probability_of_improvement.png"))

        grid = default_grid(evals)
        aligned, dropped = align(evals, grid)
        curves = S.sample_efficiency_curves(aligned, reps=reps, seed=seed)
        written += T.write_table(curves, tables / "aggregate_curves", formats=("csv",))
        written.append(save(F.aggregate_curves(curves, units_note=units_note), figs / "aggregate_curves.png"))
        if per_task:
            for domain, sub in aligned.groupby("domain"):
                unit_note = U.readings_note(data.step_units, sub["algorithm"].unique())
                written.append(save(F.per_task_curves(sub, units_note=unit_note), figs / f"per_task_{_slug(domain)}.png"))

        eff_tables, eff_curves = [], []
        for a, b in pairs:
            table, eff_curve = E.sample_efficiency_ratio(evals, a, b, reps=reps, seed=seed)
            eff_tables.append(table)
            eff_curves.append(eff_curve)
            unit_note = U.readings_note(data.step_units, [a, b])
            for row in table.to_dict("records"):
                written.append(save(F.efficiency_figure(eff_curve, row, unit_note),
                                      figs / f"efficiency_{_file_slug(a)}_vs_{_file_slug(b)}_{_slug(row['domain'])}.png"))
        eff_table = pd.concat(eff_tables, ignore_index=True) if eff_tables else \
            pd.DataFrame(columns=E.EFFICIENCY_COLUMNS)
        if eff_tables:
            written += T.write_table(eff_table, tables / "efficiency", EFFICIENCY_CAPTION + f" Step readings: {units_note}",
                                     floatfmt=".3g")
            written += T.write_table(pd.concat(eff_curves, ignore_index=True), tables / "efficiency_curves",
                                     formats=("csv",))

        if not data.runs.empty:
            timing = T.training_time_table(data.runs, data.train)
            written += T.write_table(timing, tables / "training_time", "Training time per step (ms) by domain")
        if not data.train.empty:
            written.append(save(F.diagnostics_curves(data.train), figs / "diagnostics.png"))
        if not data.runs.empty:
            for parameter, label in ABLATION_PARAMETERS.items():
                ablation = ablation_values(values, data.runs, parameter)
                if ablation[parameter].nunique() > 1:
                    slug = parameter.split(".")[-1]
                    summary = ablation.groupby(parameter)["score"].agg(["mean", "std", "count"]).reset_index()
                    written += T.write_table(summary, tables / f"ablation_{slug}", f"Ablation: {label}")
                    written.append(save(F.ablation_plot(ablation, parameter, label), figs / f"ablation_{slug}.png"))
            scaling = scaling_values(values, data.runs)
            if scaling["params"].nunique() > 1:
                def online_scaling(stem: str = "scaling", scaling: pd.DataFrame = scaling) -> list[Path]:
                    """The online model-size sweep's table and figure, named ``stem`` (``scaling_single_task``
                    when offline runs take ``scaling``)."""
                    return [*T.write_table(T.scaling_table(scaling), tables / stem, "Normalised score by model size"),
                            save(F.scaling_plot(scaling), figs / f"{stem}.png")]

        online_problems = [early, missing_steps(evals, grid)]
        if O2O.has_o2o(evals):
            o2o_written, o2o_lines, o2o_problems = write_o2o(evals, out, save, reps, seed, data.runs)
            written += o2o_written
            online_problems.append(o2o_problems)
        dropped_all = pd.concat([dropped.assign(where="curves"), dropped_at.assign(where="table")],
                                ignore_index=True)
    else:  # offline runs only: no env-step evaluation to table
        per_domain = pd.DataFrame(columns=T.PER_DOMAIN_COLUMNS)
        task_sets = pd.DataFrame(columns=S.AGGREGATE_TASKS_COLUMNS)
        eff_table = pd.DataFrame(columns=E.EFFICIENCY_COLUMNS)
        online_problems = []
        dropped_all = pd.DataFrame(columns=["algorithm", "task", "seed", "reason", "n", "steps", "where"])

    offline_lines: list[str] = []
    if not data.offline.empty:
        offline_written, offline_lines = write_offline(data.offline, out, save, reps, seed,
                                                       single_task_scaling=online_scaling)
        written += offline_written
    elif online_scaling is not None:
        written += online_scaling()
    ledger_lines: list[str] = []
    if claims:
        # our runs as gather() read them (filtered to ``expected`` and ``algorithms``); the released curves again,
        # under both step-unit readings
        sources = [] if published is None else L.load_sources(published=published, step_units=step_units,
                                                               reps=reps, seed=seed)
        if runs is not None:
            sources.append(L.own_source(data, scale, reps, seed))
        ledger = L.build_ledger(sources, cost)
        written += L.write_ledger(ledger, out, banner, save)
        ledger_lines = L.summary_lines(ledger)
    frames = [f for f in (data.problems, *online_problems) if not f.empty]  # concat warns on empties
    problems = pd.concat(frames, ignore_index=True) if frames else data.problems
    written += T.write_table(problems, tables / "problems", formats=("csv",))
    written += T.write_table(dropped_all, tables / "alignment_dropped", formats=("csv",))
    written.append(T.atomic_write_text(out / "summary.md", _summary(evals, problems, dropped_all, per_domain,
                                                                    written, out, data.step_units, eff_table,
                                                                    banner, offline_lines + o2o_lines,
                                                                    ledger_lines, task_sets, plugins)))
    return AnalysisResult(out, per_domain, problems, dropped_all, written, eff_table, data.step_units)


O2O_CAPTION = ("Offline-to-online (fig. 7): `<algo>-finetune` (started from the pretrained checkpoint) vs "
               "`<algo>-scratch` (same config and seeds), normalised score (0-100) at `step`, the last env step every "
               "paired run reached. Per task: mean over seeds, 95% bootstrap CI over seeds; `difference` = fine-tune "
               "− scratch; `reach_step`: the first env step at which fine-tuning's mean curve reaches scratch's final "
               "score (NaN: never). Task `All`: IQM over the tasks × seeds, stratified-bootstrap CIs. `pretraining`: "
               "`held-out` = outside the pretrained checkpoint's tasks, `seen in pretraining` = one of them (each "
               "fine-tuning run's run.json `init_new_task` / `init_pretrained_tasks`); `All` says what its tasks are.")


def write_o2o(evals: pd.DataFrame, out: Path, save, reps: int = 2000, seed: int = 0,
              runs: pd.DataFrame | None = None) -> tuple[list[Path], list[str], pd.DataFrame]:
    """The O2O outputs (analysis/o2o.py) under ``out`` and the summary.md section: (files, markdown lines,
    ``unpaired`` problems). ``tables/o2o.{csv,md}`` (per algorithm × task and the aggregate, each with whether the
    pretraining saw it, from ``runs``' run.json keys), ``tables/o2o_curves.csv``, ``figures/o2o_curves.png`` (a
    panel per task and an aggregate one) and
    ``figures/o2o_aggregate.png``; only a caption and the problems when no family has its partner, so that a
    half-finished O2O run set says why it has no figure rather than having none."""
    tables, figs = out / "tables", out / "figures"
    result = O2O.o2o_analysis(evals, reps=reps, seed=seed, runs=runs)
    lines = ["## Offline-to-online fine-tuning (fig. 7)", ""]
    written: list[Path] = []
    n_unpaired = len(result.problems)
    if result.empty:
        lines += ["No fine-tune/scratch pair: every `<algo>-finetune` run needs an `<algo>-scratch` run of the same "
                  f"task and seed (and vice versa); {n_unpaired} run(s) unpaired (tables/problems.csv, kind "
                  f"`{O2O.UNPAIRED}`).", ""]
        return written, lines, result.problems
    written += T.write_table(result.table, tables / "o2o", O2O_CAPTION, formats=("csv", "md"), floatfmt=".1f")
    written += T.write_table(result.curves, tables / "o2o_curves", formats=("csv",))
    written.append(save(O2O.o2o_curves_figure(result.curves), figs / "o2o_curves.png"))
    written.append(save(O2O.o2o_aggregate_figure(result.curves), figs / "o2o_aggregate.png"))

    def cell(r, key: str) -> str:
        low, high = r[f"{key}_low"], r[f"{key}_high"]
        return f"{r[key]:.1f}" + ("" if pd.isna(low) else f" [{low:.1f}, {high:.1f}]")

    shown = pd.DataFrame([{"algorithm": F.display_name(r["algorithm"]), "task": r["task"],
                           "pretraining": r["pretraining"], "env step": f"{r['step']:,}",
                           "seeds": int(r["n_seeds"]), "fine-tuned": cell(r, "finetune"),
                           "from scratch": cell(r, "scratch"), "difference": cell(r, "difference"),
                           "reaches scratch's final at": "never" if pd.isna(r["reach_step"]) else
                           f"{int(r['reach_step']):,} ({r['reach_fraction']:.0%})", "notes": r["notes"]}
                          for _, r in result.table.iterrows()])
    lines += [O2O_CAPTION, "", T.to_markdown(shown), "",
              "Figures: figures/o2o_curves.png (per task and aggregated; fine-tuned solid, from scratch "
              "dashed), figures/o2o_aggregate.png.", ""]
    if n_unpaired:
        lines += [f"**{n_unpaired} fine-tune/scratch run(s) unpaired** and left out of this comparison "
                  f"(tables/problems.csv, kind `{O2O.UNPAIRED}`).", ""]
    return written, lines, result.problems


OFFLINE_CAPTION = ("Offline multi-task runs: mean normalised score (0-100) over the dataset's tasks and seeds, at each "
                   "run's final evaluation; 95% percentile bootstrap CI resampling tasks and seeds within tasks. "
                   "Steps are gradient updates. `params`: the size preset's learnable parameters (multi-task, "
                   "README.md Size presets).")


def write_offline(offline: pd.DataFrame, out: Path, save, reps: int = 2000, seed: int = 0,
                  single_task_scaling=None) -> tuple[list[Path], list[str]]:
    """The offline outputs under ``out`` and the summary.md section about them: (files written, markdown lines).

    ``tables/offline_scores.csv`` (each run's final evaluation per task), ``tables/offline_curves.csv`` and
    ``figures/offline_curves.png`` (score vs updates, per algorithm × model size), ``tables/scaling.*`` and — only
    when some dataset has runs of at least two model sizes of known parameter count, since one point is no scaling
    curve — ``figures/scaling.png``; otherwise the section says why there is no figure. ``single_task_scaling``
    (the online sweep's writer, if any) is called with stem ``scaling_single_task`` so neither overwrites the other.
    ``save`` is :func:`analyze`'s figure writer (it adds the scale note)."""
    tables, figs = out / "tables", out / "figures"
    written: list[Path] = []
    scores = O.final_scores(offline)
    written += T.write_table(scores, tables / "offline_scores", formats=("csv",))
    curves = O.offline_curves(offline, reps=reps, seed=seed)
    written += T.write_table(curves, tables / "offline_curves", formats=("csv",))
    written.append(save(O.offline_curves_figure(curves), figs / "offline_curves.png"))
    scaling = O.scaling_table(scores, reps=reps, seed=seed)
    written += T.write_table(scaling, tables / "scaling", OFFLINE_CAPTION)
    # model sizes, not parameter counts: one preset of two algorithms has two counts (MBDPO's include its energy
    # and score network) and passed for a sweep of two sizes
    sized = scaling.dropna(subset=["params"]).groupby("dataset")["model_size"].nunique()
    lines = ["## Offline runs (multi-task; steps are gradient updates)", "",
             f"Read {offline.groupby(['algorithm', 'dataset', 'model_size', 'seed']).ngroups} offline run(s) of "
             f"{offline['algorithm'].nunique()} algorithm(s) on {offline['dataset'].nunique()} dataset(s) "
             f"({', '.join(sorted(offline['dataset'].unique()))}); model sizes: "
             f"{', '.join(O.size_order(offline['model_size']))}. Kept apart from the env-step tables above.", "",
             OFFLINE_CAPTION, "",
             T.to_markdown(scaling.drop(columns=["notes"]).assign(
                 params=scaling["params"].map(lambda v: "" if pd.isna(v) else f"{v / 1e6:.2f}M"))), ""]
    if (sized >= F.MIN_SCALING_SIZES).any():
        written.append(save(O.scaling_figure(scaling), figs / "scaling.png"))
        lines.append("Scaling figure (fig. 6): figures/scaling.png.")
    else:
        found = O.size_order(offline["model_size"])
        lines.append("No scaling figure: fig. 6 needs runs of at least two model sizes (of known parameter count) "
                     f"on one dataset; found {F.count(len(found), 'size')}: {', '.join(found) or 'none'}.")
    notes = scaling.loc[scaling["notes"] != "", ["dataset", "algorithm", "model_size", "notes"]]
    lines += [f"- {r.dataset} {r.algorithm} {r.model_size}: {r.notes}" for r in notes.itertuples()]
    if single_task_scaling is not None:
        written += single_task_scaling("scaling_single_task")
        lines.append("The online model-size sweep is in tables/scaling_single_task.* and figures/scaling_single_task.png.")
    return written, [*lines, ""]


POI_COLUMNS = ["algorithm", "baseline", "value", "low", "high", "n_tasks"]


def improvement_table(values: pd.DataFrame, candidate: str = "mbdpo", plugins: Iterable[str] = (),
                      reps: int = 2000, seed: int = 0) -> pd.DataFrame:
    """tables/probability_of_improvement: P(``candidate`` > every other algorithm), then P(plug-in > every other)
    for each of ``plugins`` (:func:`analysis.load.plugin_algorithms`) present, so that a plug-in algorithm is
    compared by the paper's algorithms and against them (P(plug-in > MBDPO) included: what a plug-in's author
    asks), each pair on the tasks both have (:func:`analysis.stats.probability_of_improvement`). Empty when fewer
    than two algorithms or none of these is present."""
    algs = set(values["algorithm"])
    frames = []
    if len(algs) > 1:
        for i, alg in enumerate([a for a in dict.fromkeys([candidate, *sorted(plugins)]) if a in algs]):
            # its own seed per compared algorithm: the candidate's rows are those of before plug-ins existed
            frames.append(S.probability_of_improvement(values, alg, reps=reps, seed=seed + 1000 * i))
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=POI_COLUMNS)


def table_values(evals: pd.DataFrame, at_step: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """One value per run for the tables: at ``at_step`` (default each domain's budget end), as
    :func:`analysis.load.values_at`; returns (values, dropped, problems).

    Runs in progress have no evaluation there: a domain where no run reached that step is tabled instead at the
    last step every run of the domain has reached (at least step 0), with an ``early_step`` problem naming both
    steps, so that a partial analysis is written rather than none."""
    values, dropped = values_at(evals, at_step)
    problems = []
    short = sorted(set(evals["domain"]) - set(values["domain"]))
    if short:
        ends = evals.groupby(["domain", "algorithm", "task", "seed"])["step"].max().groupby("domain").min()
        wanted = {d: int(g["budget"].mode().iloc[0]) if at_step is None else int(at_step)
                  for d, g in evals.groupby("domain")}
        in_short = evals["domain"].isin(short)
        early_values, early_dropped = values_at(evals[in_short], {d: int(ends[d]) for d in short})
        short_runs = set(evals.loc[in_short, "task"])
        dropped = dropped[~dropped["task"].isin(short_runs)]  # the step those drops refer to is not used
        values = pd.concat([f for f in (values, early_values) if not f.empty], ignore_index=True)
        dropped = pd.concat([f for f in (dropped, early_dropped) if not f.empty], ignore_index=True) \
            if not (dropped.empty and early_dropped.empty) else dropped
        last = evals.groupby(["domain", "algorithm", "task", "seed"])["step"].max().reset_index()
        for d in short:
            first = last[last["domain"] == d].sort_values("step").iloc[0]  # the run that limits the step
            path = evals.loc[(evals["algorithm"] == first["algorithm"]) & (evals["task"] == first["task"])
                             & (evals["seed"] == first["seed"]), "path"].iloc[0]
            problems.append({"kind": "early_step", "path": path, "algorithm": first["algorithm"],
                             "task": first["task"], "seed": int(first["seed"]),
                             "message": f"{d}: no run has an evaluation at env step {wanted[d]:,} (runs in progress?); "
                                        f"its tables use env step {int(ends[d]):,}, the last step every run of "
                                        "the domain reached (this run's last): not a final result"})
    return values, dropped, pd.DataFrame(problems, columns=PROBLEM_COLUMNS)


EFFICIENCY_CAPTION = ("Sample-efficiency ratio k: B needs k times the env steps of A to reach the same mean "
                      "normalised score (B(s) = A(s/k), least squares over the steps both curves cover; k > 1: A "
                      "is more sample-efficient); 95% bootstrap CI over tasks and runs.")
BOTH_UNITS = (U.AGENT, U.ENV)


def analyze_both_units(out: str | Path, published: str | Path, step_units: Mapping[str, str] | Iterable[str] |
                       None = None, **kwargs) -> dict[str, AnalysisResult]:
    """The whole analysis once per reading of the folders whose step unit is uncertain (FIDELITY.md D1:
    :data:`analysis.units.UNCERTAIN_FOLDERS`, the mbdpo folders): ``OUT/units-agent/`` and ``OUT/units-env/``, and
    ``OUT/tables/efficiency_by_unit.{csv,md,tex}`` (both readings' k side by side) and ``OUT/summary.md``.

    ``step_units`` may set other folders; setting an uncertain one as well is an error (this function sets them).
    Other keyword arguments go to :func:`analyze`. Returns {reading: result}.
    """
    out = Path(out)
    root = Path(published)
    if not root.is_dir():
        raise AnalysisInputError(f"published results directory {str(root)!r} does not exist "
                                 "(expected per-algorithm folders of per-task CSVs)")
    fixed = U.parse_step_units(step_units)
    folders = {p.name for p in root.iterdir() if p.is_dir()}
    uncertain = [f for f in U.UNCERTAIN_FOLDERS if f in folders]
    if not uncertain:
        raise AnalysisInputError(f"--both-units: none of the folders with an uncertain step unit "
                                 f"({', '.join(U.UNCERTAIN_FOLDERS)}) is under {str(root)!r}")
    clash = sorted(k for k in fixed if k in uncertain or k in {f.removesuffix("-pixels") for f in uncertain})
    if clash:
        raise AnalysisInputError(f"--both-units analyses {', '.join(uncertain)} under both units; do not also set "
                                 f"--step-unit for {', '.join(clash)}")
    results = {}
    for unit in BOTH_UNITS:
        results[unit] = analyze(out / f"units-{unit}", published=published,
                                step_units={**fixed, **{f: unit for f in uncertain}},
                                **{**kwargs, "claims": False})
    side = [r.efficiency.assign(reading=f"{', '.join(uncertain)} = {unit} steps") for unit, r in results.items()]
    table = pd.concat(side, ignore_index=True)
    table = table[["reading", *[c for c in table.columns if c != "reading"]]]
    written = T.write_table(table, out / "tables" / "efficiency_by_unit",
                            EFFICIENCY_CAPTION + f" Under each reading of {', '.join(uncertain)} (FIDELITY.md D1).",
                            floatfmt=".3g")
    banner = scale_note(kwargs.get("scale"), kwargs.get("note"))
    ledger_lines: list[str] = []
    if kwargs.get("claims", True):
        ledger = L.build_ledger(L.load_sources(published=published, step_units=fixed, reps=kwargs.get("reps", 2000),
                                               seed=kwargs.get("seed", 0)), kwargs.get("cost"))
        written += L.write_ledger(ledger, out, banner)
        ledger_lines = L.summary_lines(ledger)
    lines = ["# Analysis under both step-unit readings", "",
             *([f"> **{banner[0].upper() + banner[1:]}.**", ""] if banner else []), *ledger_lines,
             f"The step unit of {', '.join(uncertain)} is uncertain (FIDELITY.md D1), so everything was computed "
             "twice; each folder has its own summary.md.", ""]
    for unit, r in results.items():
        lines.append(f"- `units-{unit}/`: {', '.join(uncertain)} read as {U.reading(unit)}")
    lines += ["", "## Sample-efficiency ratio under both readings", "", EFFICIENCY_CAPTION, "",
              T.to_markdown(_efficiency_markdown(table, with_reading=True)), "",
              "Files: " + ", ".join(str(p.relative_to(out)) for p in written)]
    T.atomic_write_text(out / "summary.md", "\n".join(lines) + "\n")
    return results


def _efficiency_markdown(table: pd.DataFrame, with_reading: bool = False) -> pd.DataFrame:
    """The efficiency table as a reader wants it: k [CI] in one cell, the steps compared, the unit readings."""
    def cell(r) -> str:
        return "–" if pd.isna(r["k"]) else f"{r['k']:.2f} [{r['low']:.2f}, {r['high']:.2f}]"
    rows = []
    for _, r in table.iterrows():
        row = {"reading": r["reading"]} if with_reading else {}
        row.update({"domain": r["domain"], "A": r["a"], "B": r["b"], "k [95% CI]": cell(r),
                    "tasks": int(r["n_tasks"]),
                    "env steps compared": "" if pd.isna(r["steps_from"]) else f"{r['steps_from']:,}-{r['steps_to']:,}",
                    "A steps": r["units_a"], "B steps": r["units_b"], "notes": r["notes"]})
        rows.append(row)
    return pd.DataFrame(rows)


def with_run_config(values: pd.DataFrame, runs: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """``values`` (one row per run, from :func:`analysis.load.values_at`) with config columns of its run joined on."""
    cols = [k for k in keys if k in runs.columns]
    config = runs[["path", "algo", *cols]].rename(columns={"path": "run_dir"})
    joined = values.assign(run_dir=values["path"].map(lambda p: str(Path(p).parent)))
    return joined.merge(config, on="run_dir", how="inner")


def _varied_alone(runs: pd.DataFrame, parameter: str, algo: str) -> pd.DataFrame:
    """Runs of ``algo`` whose ``agent.*`` config equals the most common one in every key but ``parameter``.

    Run configs list every hyper-parameter, so "the runs that vary T" must be told apart from those that vary η or
    the model size: a sweep varies one key around the defaults, and the defaults are the most common values.
    """
    sub = runs[runs["algo"] == algo]
    keys = [c for c in sub.columns if c.startswith("agent.") and c != parameter]
    if sub.empty:
        return sub
    reference = {k: sub[k].mode(dropna=False).iloc[0] if sub[k].notna().any() else np.nan for k in keys}
    same = pd.Series(True, index=sub.index)
    for k, ref in reference.items():
        same &= sub[k].isna() if pd.isna(ref) else (sub[k] == ref)
    return sub[same]


def ablation_values(values: pd.DataFrame, runs: pd.DataFrame, parameter: str, algo: str = "mbdpo") -> pd.DataFrame:
    """Runs of ``algo`` for an ablation of ``parameter``: runs that differ from the common config in that key alone,
    on the tasks that have runs at every value of it (so a default-valued run of the main grid on another task does
    not weigh on one bar)."""
    if parameter not in runs.columns:
        return pd.DataFrame(columns=[*values.columns, parameter])
    frame = with_run_config(values, _varied_alone(runs, parameter, algo), [parameter])
    frame = frame[frame[parameter].notna()]
    n_values = frame[parameter].nunique()
    complete = frame.groupby("task")[parameter].nunique()
    return frame[frame["task"].isin(complete[complete == n_values].index)]


def scaling_values(values: pd.DataFrame, runs: pd.DataFrame, size_key: str = "agent.model_size",
                   task_set_key: str = "task_set") -> pd.DataFrame:
    """Fig. 6's input: ``algorithm, params, task_set, score`` per run (params parsed from preset names such as
    ``1.7M``), for every algorithm's runs that differ from its common config in the model size alone.

    ``task_set`` comes from ``task_set_key`` (multi-task runs: 30, 80; the offline issue defines that key); runs
    without it are single-task runs, labelled ``"single-task"`` (a model-size sweep of online runs)."""
    if size_key not in runs.columns:
        return pd.DataFrame(columns=["algorithm", "params", "task_set", "score"])
    keep = pd.concat([_varied_alone(runs.drop(columns=[task_set_key], errors="ignore"), size_key, algo)
                      for algo in runs["algo"].unique()])
    keep = runs.loc[keep.index]
    frame = with_run_config(values, keep, [size_key, task_set_key]).dropna(subset=[size_key])
    sizes = frame[size_key].astype(str).str.upper()
    mult = sizes.str[-1].map({"K": 1e3, "M": 1e6, "B": 1e9}).fillna(1.0)
    params = pd.to_numeric(sizes.str.rstrip("KMB"), errors="coerce") * mult
    if task_set_key in frame.columns:
        task_set = frame[task_set_key].map(lambda v: "single-task" if pd.isna(v) else
                                           int(v) if isinstance(v, float) and v.is_integer() else v)
    else:
        task_set = "single-task"
    return pd.DataFrame({"algorithm": frame["algo"], "params": params, "task_set": task_set,
                         "score": frame["score"]}).dropna(subset=["params"])


def _slug(text: str) -> str:
    return text.lower().replace(" ", "_")


def _file_slug(text: str) -> str:
    """``"mbdpo (published)"`` → ``mbdpo_published``: a label as a file-name part."""
    return "_".join("".join(c if c.isalnum() or c in "-@" else " " for c in text).split())


def _task_list(tasks) -> str:
    return ", ".join(tasks) if len(tasks) else "none"


def task_set_lines(task_sets: pd.DataFrame) -> list[str]:
    """summary.md lines saying which tasks each row of the per-domain table aggregates
    (:func:`analysis.stats.aggregate_tasks`): per domain the tasks, once when every algorithm has the same ones and
    per algorithm otherwise, with the tasks left out; and one line when the ``All`` row restricted algorithms to a
    common task set (a number on 1 task beside one on 2 in another row must not read as the same comparison)."""
    if task_sets.empty:
        return []
    lines = ["Tasks behind each row (per domain: each algorithm's own tasks with its usual number of runs; `All`: "
             "only the tasks every algorithm has):", ""]
    restricted = []
    for domain in F._domains(task_sets["domain"]):
        sub = task_sets[task_sets["domain"] == domain]
        algs = F.ordered(sub["algorithm"])
        rows = {a: sub[sub["algorithm"] == a].iloc[0] for a in algs}
        sets = {r["tasks"] for r in rows.values()}
        if len(sets) == 1:
            tasks = next(iter(sets))
            text = f"{F.count(len(tasks), 'task')}, every algorithm: {_task_list(tasks)}"
        else:
            text = "; ".join(f"{F.display_name(a)}: {F.count(r['n_tasks'], 'task')} ({_task_list(r['tasks'])})"
                             for a, r in rows.items())
        left = [f"{F.display_name(a)}: {_task_list(r['left_out'])}" for a, r in rows.items() if len(r["left_out"])]
        if left:
            text += " — left out: " + "; ".join(left)
        lines.append(f"- **{domain}**: {text}")
        if domain == S.ALL_DOMAINS and left:
            restricted = left
    lines.append("")
    if restricted:
        shared = next(iter(task_sets.loc[task_sets["domain"] == S.ALL_DOMAINS, "tasks"]))
        lines += [f"**Common task set:** the `All` row compares every algorithm on the {F.count(len(shared), 'task')} "
                  f"all algorithms have ({_task_list(shared)}), so it leaves out tasks some algorithms have "
                  f"({'; '.join(restricted)}); a domain row may use more.", ""]
    return lines


def _plugin_lines(plugins: list[str], evals: pd.DataFrame) -> list[str]:
    """summary.md's line naming the plug-in algorithms read (:func:`analysis.load.plugin_algorithms`) and how they
    are treated, so a reader of the ledger knows why they are not among its baselines."""
    present = [p for p in plugins if p in set(evals["algorithm"])]
    if not present:
        return []
    return [f"Plug-in algorithms (run.json `algo` none of the paper's): {', '.join(present)}. Drawn and tabled like "
            "the paper's, and compared with every other algorithm in tables/probability_of_improvement.*; not "
            "baselines of the paper's claims (claims.md).", ""]


def _not_final(problems: pd.DataFrame) -> list[str]:
    """Lines for the top of summary.md when runs are unfinished or a table is not at the budget end."""
    if problems.empty:
        return []
    lines = []
    incomplete = problems[problems["kind"] == "incomplete"]
    if len(incomplete):
        lines.append(f"- **Not final:** {len(incomplete)} run(s) have not finished (runs in progress or stopped); "
                     "their curves end at their last evaluation (tables/problems.csv, kind `incomplete`).")
    lines += [f"- **Not final:** {m}" for m in problems.loc[problems["kind"] == "early_step", "message"]]
    return [*lines, ""] if lines else []


def _summary(evals: pd.DataFrame, problems: pd.DataFrame, dropped: pd.DataFrame, per_domain: pd.DataFrame,
             written: list[Path], out: Path, step_units: pd.DataFrame | None = None,
             efficiency: pd.DataFrame | None = None, banner: str | None = None,
             offline_lines: list[str] | None = None, ledger_lines: list[str] | None = None,
             task_sets: pd.DataFrame | None = None, plugins: list[str] | None = None) -> str:
    lines = ["# Analysis summary", "", *([f"> **{banner[0].upper() + banner[1:]}.**", ""] if banner else []),
             *(ledger_lines or []),
             (f"Read {evals.groupby(['algorithm', 'task', 'seed']).ngroups} runs of "
             f"{evals['algorithm'].nunique()} algorithm(s) on {evals['task'].nunique()} task(s)."), "",
             *_plugin_lines(plugins or [], evals),
             *_not_final(problems),
             "## Step units", "",
             "Every step below, in tables and on figure axes, is an **env step** (action repeat included). Sources "
             "that count agent steps were multiplied by each task's action repeat on loading (FIDELITY.md D1); the "
             "file's own value is kept as `source_step`. Readings (`--step-unit FOLDER=env|agent` changes one, "
             "`--both-units` computes both for the uncertain mbdpo folders):", ""]
    if step_units is not None and not step_units.empty:
        lines.append(T.to_markdown(step_units[["source", "folder", "algorithm", "step_unit", "reading", "origin"]]))
    else:
        lines.append("No source listed.")
    if per_domain.empty:
        lines += ["", "## Per-domain normalised score", "", "No online (env-step) evaluations were read.", ""]
    else:
        lines += ["", "## Per-domain normalised score", "",
                  "At the env step in `tables/per_domain.csv`'s column `step` (default: each domain's budget end).",
                  "", T.to_markdown(T.paper_domain_table(per_domain)), "",
                  *task_set_lines(task_sets if task_sets is not None else
                                  pd.DataFrame(columns=S.AGGREGATE_TASKS_COLUMNS))]
    lines += offline_lines or []
    if efficiency is not None and not efficiency.empty:
        lines += ["## Sample-efficiency ratio", "", EFFICIENCY_CAPTION, "",
                  T.to_markdown(_efficiency_markdown(efficiency)), ""]
    lines += ["## Problems", ""]
    if problems.empty:
        lines.append("None: every expected run was read.")
    else:
        counts = problems.groupby("kind").size()
        lines += [f"- {kind}: {n}" for kind, n in counts.items()]
        lines.append("\nDetails: tables/problems.csv.")
    lines += ["", "## Alignment (nearest previous evaluation)", ""]
    if dropped.empty:
        lines.append("Nothing dropped.")
    else:
        counts = dropped.assign(reason=dropped["reason"].str.replace(r"\d+", "N", regex=True)) \
            .groupby(["where", "reason"])["n"].sum()
        lines += [f"- {where}: {reason}: {n} grid point(s)" for (where, reason), n in counts.items()]
        lines.append("\nDetails: tables/alignment_dropped.csv.")
    lines += ["", "## Files", ""] + [f"- {p.relative_to(out)}" for p in written]
    return "\n".join(lines) + "\n"
