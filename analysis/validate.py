"""Learning checks against released curves: our runs beside the authors', task by task, at the same env steps."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from analysis.load import values_at

COMPARISON_COLUMNS = ["algorithm", "task", "step", "ours_mean", "ours_runs", "published_mean", "published_min",
                      "published_max", "published_runs", "margin", "passed"]


def compare_to_published(ours: pd.DataFrame, published: pd.DataFrame, steps: Iterable[int],
                         margin: float = 10.0) -> pd.DataFrame:
    """One row per (algorithm, task, step) that both have: our mean normalised score over seeds against the
    released seeds' mean, minimum and maximum (each by nearest previous evaluation at ``step``).

    ``passed``: our mean is at least the weakest released seed minus ``margin`` normalised points — a check that a
    reimplementation learns like the original, not a claim that it matches it.
    """
    rows = []
    for step in steps:
        mine, _ = values_at(ours, int(step))
        theirs, _ = values_at(published, int(step))
        ours_stats = mine.groupby(["algorithm", "task"])["score"].agg(["mean", "size"])
        their_stats = theirs.groupby(["algorithm", "task"])["score"].agg(["mean", "min", "max", "size"])
        for (alg, task), r in ours_stats.iterrows():
            if (alg, task) not in their_stats.index:
                continue
            p = their_stats.loc[(alg, task)]
            rows.append({"algorithm": alg, "task": task, "step": int(step), "ours_mean": float(r["mean"]),
                         "ours_runs": int(r["size"]), "published_mean": float(p["mean"]),
                         "published_min": float(p["min"]), "published_max": float(p["max"]),
                         "published_runs": int(p["size"]), "margin": margin,
                         "passed": bool(r["mean"] >= p["min"] - margin)})
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS)
