"""The paper's tables as DataFrames, and writers for CSV, Markdown and LaTeX (all atomic)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from fileio import atomic_write_text as _atomic_write_text
from analysis.figures import _domains, count, display_name, domain_key, ordered
from analysis.load import task_domain

PER_DOMAIN_COLUMNS = ["algorithm", "domain", "n_tasks", "step", "mean", "mean_low", "mean_high", "iqm", "iqm_low",
                      "iqm_high", "median", "optimality_gap", "n_runs", "notes"]


def per_domain_table(intervals: pd.DataFrame, steps: pd.DataFrame | dict[str, int] | int | None = None) -> pd.DataFrame:
    """The per-domain table: one row per (algorithm, domain), normalised scores 0-100 with IQM and mean CIs.

    ``intervals`` is :func:`analysis.stats.interval_estimates`' output; ``steps`` the env step each domain's values
    were taken at (an int, a {domain: step} dict, or a frame with ``domain, step``), written into ``step``.
    """
    wide = intervals.pivot_table(index=["algorithm", "domain"], columns="metric", values=["value", "low", "high"],
                                 aggfunc="first")
    out = pd.DataFrame(index=wide.index)
    for metric in ("mean", "iqm", "median", "optimality_gap"):
        if ("value", metric) in wide.columns:
            out[metric] = wide[("value", metric)]
    for metric in ("mean", "iqm"):
        if ("low", metric) in wide.columns:
            out[f"{metric}_low"] = wide[("low", metric)]
            out[f"{metric}_high"] = wide[("high", metric)]
    meta = intervals.groupby(["algorithm", "domain"])[["n_tasks", "n_runs", "notes"]].first()
    out = out.join(meta).reset_index()
    if isinstance(steps, pd.DataFrame):
        step_of = dict(zip(steps["domain"], steps["step"]))
    elif isinstance(steps, dict):
        step_of = dict(steps)
    else:
        step_of = {d: steps for d in out["domain"].unique()}
    if "All" in set(out["domain"]) and "All" not in step_of:
        known = {v for k, v in step_of.items() if v is not None}
        step_of["All"] = known.pop() if len(known) == 1 else None  # mixed budgets: no single step
    out["step"] = out["domain"].map(step_of).astype("Int64")
    alg_order = {a: i for i, a in enumerate(ordered(out["algorithm"]))}
    # a plug-in task's domain (or "?") after the paper's, before All; not NaN-sorted to the end
    out = out.sort_values(["domain", "algorithm"], key=lambda s: s.map(domain_key) if s.name == "domain"
                          else s.map(alg_order))
    return out[[c for c in PER_DOMAIN_COLUMNS if c in out.columns]].reset_index(drop=True)


def paper_domain_table(per_domain: pd.DataFrame, value: str = "mean", ci: bool = True) -> pd.DataFrame:
    """The paper's layout: domains as rows (with task counts), algorithms as columns, cells ``value [low, high]``."""
    rows = []
    for domain in _domains(per_domain["domain"]):  # every domain: a plug-in task's too, not only the paper's
        sub = per_domain[per_domain["domain"] == domain]
        row = {"Domain": domain, "#": int(sub["n_tasks"].max())}
        for alg in ordered(per_domain["algorithm"]):
            r = sub[sub["algorithm"] == alg]
            if r.empty:
                row[display_name(alg)] = "–"
                continue
            r = r.iloc[0]
            cell = f"{r[value]:.1f}"
            if ci and f"{value}_low" in r:
                cell += f" [{r[f'{value}_low']:.1f}, {r[f'{value}_high']:.1f}]"
            if int(r["n_tasks"]) != row["#"]:
                cell += f" ({count(r['n_tasks'], 'task')})"
            row[display_name(alg)] = cell
        rows.append(row)
    return pd.DataFrame(rows)


def training_time_table(runs: pd.DataFrame, train: pd.DataFrame) -> pd.DataFrame:
    """Tab. 1: training time per step by domain and algorithm, from the run files.

    ``ms_per_env_step`` = run wall time / env steps done (everything: acting, updates, evaluation);
    ``update_ms`` and ``act_ms`` are the means of train.csv's per-update and per-act wall times. Means over runs.
    """
    if runs.empty:
        return pd.DataFrame(columns=["algorithm", "domain", "runs", "ms_per_env_step", "update_ms", "act_ms"])
    r = runs.copy()
    if "domain" not in r.columns:  # load_runs records each run's domain (an unregistered task's from its run.json)
        r["domain"] = r["task"].map(task_domain)
    r["ms_per_env_step"] = 1000.0 * pd.to_numeric(r["wall_time_s"], errors="coerce") / \
        pd.to_numeric(r["env_steps_done"], errors="coerce").replace(0, np.nan)
    out = r.groupby(["algorithm", "domain"]).agg(runs=("seed", "size"), ms_per_env_step=("ms_per_env_step", "mean"))
    if not train.empty:
        cols = [c for c in ("update_ms", "act_ms") if c in train.columns]
        per_run = train.groupby(["algorithm", "domain", "task", "seed"])[cols].mean()
        out = out.join(per_run.groupby(["algorithm", "domain"]).mean())
    return out.reset_index()


def scaling_table(scaling: pd.DataFrame) -> pd.DataFrame:
    """Fig. 6's table: mean normalised score per parameter count (rows) and task set (columns), per algorithm,
    with the ratio of the largest task set to the smallest (the paper's "80/30")."""
    if scaling.empty:
        return pd.DataFrame(columns=["algorithm", "params"])
    wide = scaling.pivot_table(index=["algorithm", "params"], columns="task_set", values="score", aggfunc="mean")
    sets = sorted(wide.columns, key=lambda v: float(v) if str(v).replace(".", "").isdigit() else str(v))
    wide = wide[sets]
    wide.columns = [f"{s} tasks" for s in sets]
    if len(sets) >= 2:
        wide[f"{sets[-1]}/{sets[0]}"] = wide.iloc[:, -1] / wide.iloc[:, 0]
    return wide.reset_index()


# ------------------------------------------------------------------------------------------------------ writers

def to_markdown(df: pd.DataFrame, floatfmt: str = ".1f") -> str:
    """A GitHub-flavoured Markdown table (no extra dependency)."""
    def fmt(v) -> str:
        if isinstance(v, float):
            return "" if np.isnan(v) else format(v, floatfmt)
        return "" if v is None or v is pd.NA else str(v).replace("|", "\\|")
    header = "| " + " | ".join(map(str, df.columns)) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([header, rule, *body]) + "\n"


def to_latex(df: pd.DataFrame, caption: str = "", label: str = "", floatfmt: str = ".1f") -> str:
    """A booktabs LaTeX table."""
    def esc(v) -> str:
        if isinstance(v, float):
            return "" if np.isnan(v) else format(v, floatfmt)
        s = "" if v is None or v is pd.NA else str(v)
        for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#"),
                     ("–", "--")):
            s = s.replace(a, b)
        return s
    lines = [r"\begin{table}[t]", r"\centering", r"\begin{tabular}{" + "l" * len(df.columns) + "}", r"\toprule",
             " & ".join(esc(c) for c in df.columns) + r" \\", r"\midrule"]
    lines += [" & ".join(esc(v) for v in row) + r" \\" for row in df.itertuples(index=False)]
    lines += [r"\bottomrule", r"\end{tabular}"]
    if caption:
        lines.append(r"\caption{" + esc(caption) + "}")
    if label:
        lines.append(r"\label{" + label + "}")
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` atomically (the run files' writer: temporary sibling, fsync, rename)."""
    path = Path(path)
    _atomic_write_text(path, text)
    return path


def write_table(df: pd.DataFrame, path_stem: str | Path, caption: str = "", formats=("csv", "md", "tex"),
                floatfmt: str = ".1f") -> list[Path]:
    """``stem.csv`` (full precision), ``stem.md`` and ``stem.tex`` (``floatfmt``), each written atomically."""
    stem = Path(path_stem)
    written = []
    if "csv" in formats:
        written.append(atomic_write_text(stem.with_suffix(".csv"), df.to_csv(index=False)))
    if "md" in formats:
        written.append(atomic_write_text(stem.with_suffix(".md"), (f"{caption}\n\n" if caption else "")
                                         + to_markdown(df, floatfmt)))
    if "tex" in formats:
        written.append(atomic_write_text(stem.with_suffix(".tex"), to_latex(df, caption, f"tab:{stem.name}", floatfmt)))
    return written
