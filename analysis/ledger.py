"""The claims ledger: every claim of :mod:`analysis.claims` run on every source, with verdicts, evidence and what
deciding would cost; written as ``claims.md``, ``claims.csv``, ``tables/claims_summary.csv`` and
``figures/claims.png``.

Sources (:func:`load_sources`): the released curves, read under **both** step-unit readings of the mbdpo folders
(FIDELITY.md D1: ``agent`` — the declared reading, steps × action repeat — and ``env``), and/or our own run files
(env steps; smoke or full scale). Verdicts (:mod:`analysis.verdicts`): each statistic's verdict per reading, joined
across readings into the part's verdict (*depends on the step unit* when they differ); a claim's verdict per
source is the weakest of its parts (:func:`analysis.verdicts.conjunction`), and its headline verdict that of the
full-scale sources when there are any (the released curves are full scale), else that of the smoke-scale ones.

What deciding costs: for an undecided statistic, the seeds per task (or tasks) that would put its CI on one side at
80 % power (:func:`analysis.verdicts.runs_to_decide`), and the GPU- and CPU-hours of the runs that adds, from the
workflow's cost model (a :class:`CostModel`, passed in by the CLI and the workflow; the analysis itself imports no
workflow or run-loop code). Clearly an estimate: it assumes the observed effect and spread.

``claims.csv`` (format :data:`LEDGER_FORMAT`) is tidy, one row per statistic × part × source × reading
(:data:`LEDGER_COLUMNS`); claims with no data anywhere get one *not tested* row naming the config and command.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from analysis import AnalysisInputError
from analysis import claims as C
from analysis import units as U
from analysis import verdicts as V
from analysis.load import RunSet, load_published, load_runs, task_spec

LEDGER_FORMAT = 1
"""Version of claims.csv's columns; bumped when a column changes meaning."""
LEDGER_COLUMNS = [*C.EVIDENCE_COLUMNS, "part_verdict", "n_needed", "gpu_hours", "cpu_hours", "format"]
SUMMARY_COLUMNS = ["claim", "title", "verdict", "source", "statistic", "decide"]

VERDICT_COLORS = {V.SUPPORTED: "#2b8a3e", V.CONTRADICTED: "#c92a2a", V.UNDECIDED: "#868e96",
                  V.DEPENDS_ON_UNIT: "#e67700", V.NOT_TESTED: "#ced4da"}
READING_MARKERS = {U.AGENT: "o", U.ENV: "s"}


class CostModel(Protocol):
    """Hours of one run (the workflow's cost model: workflow/scripts/plan.py ``estimated_hours`` and
    ``estimated_offline_hours``)."""

    def estimated_hours(self, algo: str, task: str, steps: int, model_size: str | None = None,
                        gpu: bool = False) -> float: ...

    def estimated_offline_hours(self, algo: str, updates: int, model_size: str, gpu: bool = False) -> float: ...


@dataclass
class Ledger:
    """What :func:`build_ledger` found: every evidence row (``rows``, :data:`LEDGER_COLUMNS`) and one line per claim
    (``summary``, :data:`SUMMARY_COLUMNS`)."""

    rows: pd.DataFrame
    summary: pd.DataFrame


# ---------------------------------------------------------------------------------------------------- sources

def released_readings(published: str | Path, step_units: Mapping[str, str] | Iterable[str] | None = None
                      ) -> dict[str, pd.DataFrame]:
    """The released curves under each reading of the folders whose step unit is uncertain ({``agent``: evals,
    ``env``: evals}; FIDELITY.md D1), or {``declared``: evals} when none of them is present or ``step_units``
    fixes them. Read once: the env reading is the file's own step (``source_step``) for those folders."""
    fixed = U.parse_step_units(step_units)
    data = load_published(published, step_units=fixed)
    evals = data.evals
    folders = {Path(p).parent.name for p in evals["path"].unique()}
    uncertain = [f for f in U.UNCERTAIN_FOLDERS if f in folders
                 and f not in fixed and f.removesuffix("-pixels") not in fixed]
    if not uncertain:
        return {"declared": evals}
    folder = evals["path"].map(lambda p: Path(p).parent.name)
    readings = {}
    for unit in (U.AGENT, U.ENV):
        frame = evals.copy()
        mine = folder.isin(uncertain).to_numpy()
        frame.loc[mine, "step_unit"] = unit
        if unit == U.ENV:
            frame.loc[mine, "step"] = frame.loc[mine, "source_step"]
        else:
            repeat = frame.loc[mine, "task"].map(_action_repeat)
            frame.loc[mine, "step"] = frame.loc[mine, "source_step"] * repeat
        readings[unit] = frame
    return readings


def _action_repeat(task: str) -> int:
    spec = task_spec(task)
    # load_published reads only registered tasks (it reports and skips the rest), so a spec is always found here
    return spec.action_repeat if spec is not None else 1


def infer_scale(evals: pd.DataFrame) -> str:
    """``full`` when every online run's budget is its task's budget in the paper (the registry's; a task plug-in's
    own when installed), else ``smoke``; no online runs (offline runs alone) count as smoke: their length is not
    checked against the paper's. Runs of tasks the registry does not know (a plug-in not installed here) have no
    budget to check and are left out of the check: they would otherwise turn every source with them into "smoke"
    scale and move the headline verdicts of claims they take no part in."""
    if evals.empty:
        return C.SMOKE
    specs = {t: task_spec(t) for t in evals["task"].unique()}
    paper = evals["task"].map(lambda t: specs[t].budget if specs[t] is not None else np.nan)
    known = paper.notna()
    if not known.any():
        return C.SMOKE
    return C.FULL if bool((evals.loc[known, "budget"] >= paper[known]).all()) else C.SMOKE


def own_source(data: RunSet, scale: str | None = None, reps: int = 2000, seed: int = 0) -> C.Source:
    """Our run files as a source, from what a loader already read (``RunSet``: its own rows only)."""
    evals = data.evals[data.evals["source"] == "ours"] if "source" in data.evals.columns else data.evals
    own_scale = scale if scale in (C.FULL, C.SMOKE) else (C.FULL if scale == "paper" else infer_scale(evals))
    return C.Source(C.OWN, own_scale, {U.ENV: evals} if not evals.empty else {}, data.runs, data.train,
                    data.offline, data.offline_runs, reps=reps, seed=seed)


def load_sources(runs: str | Path | None = None, published: str | Path | None = None,
                 step_units: Mapping[str, str] | Iterable[str] | None = None, scale: str | None = None,
                 expected: list[tuple[str, str, int]] | None = None, reps: int = 2000,
                 seed: int = 0) -> list[C.Source]:
    """The ledger's sources: the released curves (every step-unit reading) and/or our run files."""
    if runs is None and published is None:
        raise AnalysisInputError("claims: give a runs directory (--runs) and/or released curves (--published)")
    sources = []
    if published is not None:
        sources.append(C.Source(C.RELEASED, C.FULL, released_readings(published, step_units), reps=reps,
                                seed=seed))
    if runs is not None:
        data = load_runs(runs, expected=expected)
        if expected is not None and not data.evals.empty:
            wanted = {(n, t, int(s)) for n, t, s in expected}
            keys = zip(data.evals["algorithm"].str.split("@").str[0], data.evals["task"],
                       data.evals["seed"].astype(int))
            data.evals = data.evals[[k in wanted for k in keys]].reset_index(drop=True)
        sources.append(own_source(data, scale, reps, seed))
    return sources


# ----------------------------------------------------------------------------------------------------- ledger

def _not_tested(claim: C.Claim) -> dict:
    row = {c: np.nan for c in C.EVIDENCE_COLUMNS}
    row.update({"claim": claim.id, "part": "(no data)", "source": "", "scale": "", "reading": "",
                "statistic": claim.test, "verdict": V.NOT_TESTED, "n": 0, "unit": "", "n_tasks": 0, "seeds": "",
                "algorithms": "", "steps": "", "direction": "", "note": f"produce it with: {claim.produce}"})
    return row


def _hours(items: str, cost: CostModel | None, gpu: bool) -> float:
    if cost is None or not items:
        return float("nan")
    total = 0.0
    for item in items.split(";"):
        parts = item.split("@")
        algo = parts[0].split("-")[0]  # mbdpo-finetune costs what mbdpo does
        if parts[1] == "offline":
            total += cost.estimated_offline_hours(algo, int(parts[2]), parts[3], gpu=gpu)
        else:
            total += cost.estimated_hours(algo, parts[1], int(parts[2]), parts[3] if len(parts) > 3 else None,
                                          gpu=gpu)
    return total


def _decide(rows: pd.DataFrame, cost: CostModel | None) -> pd.DataFrame:
    """``n_needed`` and the hours it would add, for undecided rows of a part that is undecided."""
    needed, gpu_h, cpu_h = [], [], []
    for r in rows.itertuples():
        if r.part_verdict != V.UNDECIDED or r.verdict != V.UNDECIDED or r.unit == C.LEVELS_UNIT:
            needed.append(np.nan), gpu_h.append(np.nan), cpu_h.append(np.nan)
            continue
        n = V.runs_to_decide(int(r.n), r.value, r.low, r.high, r.threshold)
        if not math.isfinite(n):
            needed.append(n), gpu_h.append(np.nan), cpu_h.append(np.nan)
            continue
        # One more seed per task = every listed run once more; more tasks = the listed runs again on a larger set.
        extra = (n - r.n) if r.unit != C.TASKS_UNIT else 1.0
        needed.append(n)
        gpu_h.append(extra * _hours(r.algorithms, cost, True))
        cpu_h.append(extra * _hours(r.algorithms, cost, False))
    return rows.assign(n_needed=needed, gpu_hours=gpu_h, cpu_hours=cpu_h)


def build_ledger(sources: list[C.Source], cost: CostModel | None = None,
                 claims: Mapping[str, C.Claim] | None = None) -> Ledger:
    """Every claim on every source → the evidence rows with part verdicts and the power/cost estimate, and one
    summary line per claim (module docstring for the rules)."""
    claims = C.CLAIMS if claims is None else claims
    frames = []
    for claim in claims.values():
        rows = [row for source in sources for row in claim.evaluate(source)]
        frames.append(pd.DataFrame(rows if rows else [_not_tested(claim)], columns=C.EVIDENCE_COLUMNS))
    rows = pd.concat(frames, ignore_index=True)
    keys = ["claim", "source", "part", "statistic"]
    part = rows.groupby(keys, sort=False)[["reading", "verdict"]].apply(
        lambda g: V.across_readings(dict(zip(g["reading"], g["verdict"])))).rename("part_verdict")
    rows = rows.merge(part.reset_index(), on=keys, how="left")
    rows = _decide(rows, cost).assign(format=LEDGER_FORMAT)[LEDGER_COLUMNS]
    summary = [_summary_line(claim, rows[rows["claim"] == claim.id]) for claim in claims.values()]
    return Ledger(rows, pd.DataFrame(summary, columns=SUMMARY_COLUMNS))


def source_verdicts(rows: pd.DataFrame) -> dict[str, str]:
    """{source: the claim's verdict on that source} (the conjunction of its parts' verdicts)."""
    parts = rows.drop_duplicates(["source", "part", "statistic"])
    return {s: V.conjunction(g["part_verdict"]) for s, g in parts.groupby("source", sort=False)}


def headline_verdict(rows: pd.DataFrame) -> tuple[str, str]:
    """(verdict, sources it rests on): the full-scale sources' conjunction if any, else the smoke-scale ones'."""
    if (rows["verdict"] == V.NOT_TESTED).all() and (rows["source"] == "").all():
        return V.NOT_TESTED, ""
    full = rows[rows["scale"] == C.FULL]
    chosen = full if len(full) else rows
    sources = sorted(set(chosen["source"]))
    return V.conjunction(chosen.drop_duplicates(["source", "part", "statistic"])["part_verdict"]), \
        ", ".join(f"{s} ({chosen.loc[chosen['source'] == s, 'scale'].iloc[0]} scale)" for s in sources)


def _headline_row(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows a one-line summary shows: the All-tasks comparison with TD-MPC2 when there is one, else the first
    part; all of its readings."""
    for prefix in (f"{C.ALL}: {C.CANDIDATE} vs {C.TDMPC2}", f"{C.VISUAL}: {C.CANDIDATE} vs {C.TDMPC2}"):
        hit = rows[rows["part"] == prefix]
        if len(hit):
            first = hit.iloc[0]
            return hit[(hit["statistic"] == first["statistic"]) & (hit["source"] == first["source"])]
    measured = rows[np.isfinite(rows["value"].astype(float))]
    first = (measured if len(measured) else rows).iloc[0]
    return rows[(rows["part"] == first["part"]) & (rows["statistic"] == first["statistic"])
                & (rows["source"] == first["source"])]


def _ci_text(r) -> str:
    if not math.isfinite(r.value):
        return "–"
    ci = f" [{r.low:.3g}, {r.high:.3g}]" if math.isfinite(r.low) and math.isfinite(r.high) else " (no CI)"
    return f"{r.value:.3g}{ci}"


def statistic_text(rows: pd.DataFrame) -> str:
    """``"IQM difference (points) 1.1 [0.5, 1.7] (agent), 2.0 [1.4, 2.6] (env) vs 0"`` for one part's rows."""
    if rows.empty or not math.isfinite(rows["value"].iloc[0]):
        return "–"
    first = rows.iloc[0]
    cells = [_ci_text(r) + (f" ({r.reading})" if len(rows) > 1 else "") for r in rows.itertuples()]
    return f"{first['statistic']} {', '.join(cells)}; claim: {first['direction']} {first['threshold']:g}"


def decide_text(claim: C.Claim, rows: pd.DataFrame, verdict: str) -> str:
    """What would decide a claim: the config for *not tested*, the step unit for *depends*, the largest power
    estimate among undecided parts (an estimate, with its hours) for *undecided*."""
    if verdict == V.NOT_TESTED:
        return f"not tested: {claim.produce}"
    if verdict == V.DEPENDS_ON_UNIT:
        return ("the step unit of the released mbdpo curves (FIDELITY.md D1), not more seeds: a log of the "
                "released trainer's step counter, or a re-run of MBDPO (config/paper.yaml)")
    if verdict != V.UNDECIDED:
        return "–"
    undecided = rows[rows["part_verdict"] == V.UNDECIDED]
    pending = undecided[undecided["n_needed"].notna()]
    if pending.empty:
        if (undecided["unit"] == C.LEVELS_UNIT).any():
            return ("more levels: a rank correlation over two model sizes (or T/N values) is ±1 whatever the seeds; "
                    f"{claim.produce}")
        return "undecided parts have no CI to extrapolate from (one run per cell): add seeds"
    finite = pending[np.isfinite(pending["n_needed"])]
    if finite.empty:
        return "observed effect is exactly at the threshold: no number of seeds decides it at this effect"
    worst = finite.loc[finite["n_needed"].idxmax()]
    hours = ""
    if finite["gpu_hours"].notna().any():
        per_part = finite.sort_values("n_needed").drop_duplicates(["source", "part", "statistic"], keep="last")
        hours = (f"; {_hours_text(per_part['gpu_hours'].sum())} GPU-h or "
                 f"{_hours_text(per_part['cpu_hours'].sum())} CPU-h for all undecided parts")
    if worst["n_needed"] > NEGLIGIBLE * worst["n"]:
        return (f"estimate: more than {NEGLIGIBLE}× the {worst['unit']} (now {int(worst['n'])}) for "
                f"'{worst['part']}' ({worst['source']}): the observed effect is negligible against its spread, so "
                "more of the same runs will not decide it")
    return (f"estimate: ≈{int(worst['n_needed'])} {worst['unit']} (now {int(worst['n'])}) for '{worst['part']}' "
            f"({worst['source']}){hours}")


def domain_verdicts(rows: pd.DataFrame) -> pd.DataFrame:
    """Per source and domain (parts named ``"<domain>: a vs b"``): the verdict under each reading (the conjunction
    of that reading's statistics over baselines) and the part verdicts joined (``verdict``). Empty for claims whose
    parts are not per domain."""
    from envs.registry import DOMAINS

    domain = rows["part"].str.split(": ").str[0]
    # C1-C3 parts are per domain whatever it is called (a task plug-in's domain, "?"); other claims' parts are per
    # domain only when named by one of the paper's (C6's "mbdpo: fine-tuned vs …" is per algorithm)
    named = domain.isin([*DOMAINS, C.ALL]) | rows["claim"].isin(PER_DOMAIN_CLAIMS)
    per_domain = rows[named & rows["part"].str.contains(" vs ", regex=False)]
    per_domain = per_domain.assign(domain=per_domain["part"].str.split(": ").str[0])
    out = []
    for (source, domain), g in per_domain.groupby(["source", "domain"], sort=False):
        row = {"source": source, "domain": domain}
        for reading, h in g.groupby("reading", sort=False):
            row[f"reading {reading}"] = V.conjunction(h["verdict"])
        row["verdict"] = V.conjunction(g.drop_duplicates(["part", "statistic"])["part_verdict"])
        against = sorted({p.split(" vs ")[-1] for p in g["part"]})
        row["baselines"] = ", ".join(against)
        out.append(row)
    frame = pd.DataFrame(out)
    if frame.empty:
        return frame
    order = {d: i for i, d in enumerate(sorted(frame["domain"].unique(), key=lambda d: (d == C.ALL, d)))}
    return frame.sort_values(["source", "domain"], key=lambda c: c.map(order) if c.name == "domain" else c) \
        .reset_index(drop=True)


PER_DOMAIN_CLAIMS = ("C1", "C2", "C3")
"""Claims whose parts are ``"<domain>: mbdpo vs <baseline>"`` (:func:`analysis.claims.online_lead` and siblings)."""

NEGLIGIBLE = 100
"""A power estimate beyond this many times the units a statistic has is reported as 'negligible effect', not as a
number of seeds nobody would run."""


def _hours_text(hours: float) -> str:
    return "<1" if hours < 1 else f"≈{hours:,.0f}"


def _summary_line(claim: C.Claim, rows: pd.DataFrame) -> dict:
    verdict, sources = headline_verdict(rows)
    return {"claim": claim.id, "title": claim.title, "verdict": verdict, "source": sources,
            "statistic": statistic_text(_headline_row(rows)), "decide": decide_text(claim, rows, verdict)}


# ---------------------------------------------------------------------------------------------------- outputs

def _md_cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


VERDICT_HELP = (
    "*supported*: the 95 % CI lies on the claim's side of the threshold; *contradicted*: on the other side; "
    "*undecided*: the CI spans the threshold; *depends on the step unit*: the verdict differs between the two "
    "readings of the released MBDPO curves' step unit (FIDELITY.md D1: `agent` = the declared reading, file steps "
    "× action repeat; `env` = file steps as env steps); *not tested*: no data (the command that would produce it "
    "is named). A claim is as strong as its weakest part. Power estimates assume the observed effect and spread "
    "and are estimates.")


def claims_markdown(ledger: Ledger, banner: str | None = None) -> str:
    """claims.md: the one-line-per-claim table, then each claim's quote, test, blanks and parts."""
    lines = ["# Claims ledger", ""]
    if banner:
        lines += [f"> **{banner[0].upper() + banner[1:]}.**", ""]
    lines += [VERDICT_HELP, ""]
    table = []
    for s in ledger.summary.itertuples():
        claim = C.CLAIMS.get(s.claim)
        quote = textwrap.shorten(claim.quote, 160) if claim else ""
        figure = claim.evidence_figure if claim else ""
        table.append([f"{s.claim} {s.title}", quote, f"**{s.verdict}**", s.statistic, figure, s.decide])
    lines += [_table(["claim", "statement (the paper)", "verdict", "statistic [95% CI]", "evidence figure",
                      "what would decide it"], table), ""]
    for claim_id, rows in ledger.rows.groupby("claim", sort=False):
        claim = C.CLAIMS.get(claim_id)
        s = ledger.summary[ledger.summary["claim"] == claim_id].iloc[0]
        lines += [f"## {claim_id} {s['title']}: {s['verdict']}", ""]
        if claim is not None:
            lines += [f"> {claim.quote}", "", f"- Paper: {claim.paper_figure}; ours: {claim.evidence_figure}",
                      f"- Test: {claim.test}", f"- Left blank by the paper: {claim.blanks or 'nothing'}",
                      f"- Data from: {claim.produce}"]
        if s["source"]:
            lines.append(f"- Verdict rests on: {s['source']}; per source: "
                         + ", ".join(f"{k}: {v}" for k, v in source_verdicts(rows).items()))
        lines += [f"- What would decide it: {s['decide']}", ""]
        if (rows["part"] == "(no data)").all():
            continue
        by_domain = domain_verdicts(rows)
        if not by_domain.empty:
            lines += ["By domain (each reading: the weakest statistic over every baseline; `verdict`: the readings "
                      "joined):", "", _table(list(by_domain.columns), by_domain.fillna("–").values.tolist()), ""]
        parts = []
        for (source, part, statistic), g in rows.groupby(["source", "part", "statistic"], sort=False):
            first = g.iloc[0]
            decide = ""
            if first["part_verdict"] == V.UNDECIDED and first["unit"] == C.LEVELS_UNIT:
                decide = "more levels (±1 over two)"
            elif first["part_verdict"] == V.UNDECIDED and g["n_needed"].notna().any():
                n = g["n_needed"].max()
                decide = ("∞ (effect at threshold)" if not math.isfinite(n) else
                          f"> {NEGLIGIBLE}× (negligible effect)" if n > NEGLIGIBLE * first["n"] else
                          f"≈{int(n)} {first['unit']}")
            parts.append([source, first["scale"], part, f"{statistic} {first['direction']} {first['threshold']:g}",
                          "; ".join(f"{r.reading}: {_ci_text(r)}" for r in g.itertuples()), first["part_verdict"],
                          f"{int(first['n_tasks'])} × {first['seeds']}", first["steps"], decide, first["note"] or ""])
        lines += [_table(["source", "scale", "part", "statistic", "value [95% CI] per reading", "verdict",
                          "tasks × seeds", "steps", "to decide (estimate)", "notes"], parts), ""]
    return "\n".join(lines) + "\n"


FIGURE_BASELINE = C.TDMPC2
"""Per-domain claims (C1, C2) show their parts against this baseline in the figure (all baselines: claims.md)."""


def _figure_rows(rows: pd.DataFrame) -> pd.DataFrame:
    rows = rows[rows["value"].notna()]
    per_domain = rows["part"].str.contains(" vs ", regex=False) & rows["claim"].isin(["C1", "C2"])
    keep = ~per_domain | rows["part"].str.endswith(f" vs {FIGURE_BASELINE}")
    return rows[keep]


def claims_figure(ledger: Ledger, max_rows: int = 48) -> Figure:
    """Each statistic as a standardised effect (distance from the threshold in CI half-widths, positive favours the
    claim) with its CI, coloured by its verdict under its reading; one marker per step-unit reading, the part's
    joined verdict in brackets; a claim without data is a cross at 0 marked *not tested*. C1/C2 show their
    per-domain parts against :data:`FIGURE_BASELINE`."""
    rows = _figure_rows(ledger.rows)

    def label(r) -> str:
        own = " (own runs)" if r.source == C.OWN else ""
        return f"{r.claim} {r.part} · {r.statistic}{own} [{r.part_verdict}]"

    labels = list(dict.fromkeys(label(r) for r in rows.itertuples()))[:max_rows]
    untested = [f"{s.claim} {s.title} [{V.NOT_TESTED}]" for s in ledger.summary.itertuples()
                if s.claim not in set(rows["claim"])]
    labels += untested
    fig = Figure(figsize=(10.0, 1.6 + 0.26 * max(len(labels), 1)))
    ax = fig.add_subplot(1, 1, 1)
    y = {text: i for i, text in enumerate(labels)}
    for text in untested:  # every claim appears: those without data as a cross on the threshold
        ax.plot([0.0], [y[text]], marker="x", color=VERDICT_COLORS[V.NOT_TESTED], ms=6, ls="none")
    offsets = {U.AGENT: -0.17, U.ENV: 0.17}
    clip = 12.0
    for r in rows.itertuples():
        text = label(r)
        if text not in y:
            continue
        eff, lo, hi = V.standardised_effect(r.value, r.low, r.high, r.threshold, r.direction)
        pos = y[text] + offsets.get(r.reading, 0.0)
        color = VERDICT_COLORS[r.verdict]
        if math.isfinite(lo):
            ax.plot([max(lo, -clip), min(hi, clip)], [pos, pos], color=color, lw=2)
        if math.isfinite(eff):
            ax.plot([float(np.clip(eff, -clip, clip))], [pos], marker=READING_MARKERS.get(r.reading, "D"),
                    color=color, ms=5, ls="none")
    ax.axvline(0.0, color="black", lw=0.8)
    ax.set_yticks(range(len(labels)))
    ax.set_yticklabels([textwrap.shorten(t, 90) for t in labels], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(-clip - 0.5, clip + 0.5)
    ax.set_xlabel(f"(statistic − threshold) / CI half-width; > 0 favours the claim (clipped at ±{clip:g})", fontsize=8)
    ax.set_ylabel("claim · part · statistic [verdict across readings]", fontsize=8)
    handles = [ax.plot([], [], color=c, lw=3, label=v)[0] for v, c in VERDICT_COLORS.items()
               if v not in (V.NOT_TESTED, V.DEPENDS_ON_UNIT)]
    handles.append(ax.plot([], [], color=VERDICT_COLORS[V.NOT_TESTED], marker="x", ls="none", label=V.NOT_TESTED)[0])
    handles += [ax.plot([], [], color="black", marker=m, ls="none", label=f"released mbdpo read as {u} steps")[0]
                for u, m in READING_MARKERS.items()]
    handles.append(ax.plot([], [], color="black", marker="D", ls="none", label="own runs (env steps)")[0])
    fig.legend(handles=handles, loc="upper center", ncol=3, fontsize=7, frameon=False)
    height = fig.get_figheight()
    fig.subplots_adjust(left=0.5, right=0.98, top=1 - 0.75 / height, bottom=0.5 / height)
    return fig


def write_ledger(ledger: Ledger, out: str | Path, banner: str | None = None, save=None) -> list[Path]:
    """``out/claims.md``, ``out/claims.csv``, ``out/tables/claims_summary.csv`` (one line per claim,
    :data:`SUMMARY_COLUMNS`) and ``out/figures/claims.png``; returns the paths. ``save`` draws the
    figure (the analysis's, which marks smoke scale); files are written atomically."""
    from analysis import figures as F
    from analysis.tables import atomic_write_text

    out = Path(out)
    written = [atomic_write_text(out / "claims.md", claims_markdown(ledger, banner)),
               atomic_write_text(out / "claims.csv", ledger.rows.to_csv(index=False)),
               atomic_write_text(out / "tables" / "claims_summary.csv", ledger.summary.to_csv(index=False))]
    fig = claims_figure(ledger)
    written.append(save(fig, out / "figures" / "claims.png") if save else F.save(F.mark(fig, banner),
                                                                                out / "figures" / "claims.png"))
    return written


def summary_lines(ledger: Ledger) -> list[str]:
    """The ledger's lines at the top of summary.md (and of the main job's last message)."""
    lines = ["## Claims of the paper", "", "claims.md has the evidence, CIs and what would decide each claim.", ""]
    lines.append(_table(["claim", "verdict", "rests on", "statistic [95% CI]"],
                        [[f"{s.claim} {s.title}", s.verdict, s.source or "–", s.statistic]
                         for s in ledger.summary.itertuples()]))
    return [*lines, ""]
