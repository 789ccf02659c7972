"""Normalised scores: every domain on one 0-100 scale (shared/paper/TASKS.md, "Normalised score")."""

from __future__ import annotations

import numpy as np
import pandas as pd


def normalised_score(episode_return: pd.Series, success: pd.Series, metric: pd.Series) -> pd.Series:
    """DMControl return / 10 (returns are 0-1000) and success rate × 100, chosen per row by the task's metric."""
    metric = pd.Series(metric, index=episode_return.index)
    unknown = sorted(set(metric.unique()) - {"return", "success"})
    if unknown:
        raise ValueError(f"unknown task metric(s) {unknown}; valid: 'return', 'success'")
    return pd.Series(np.where(metric == "success", success * 100.0, episode_return / 10.0),
                     index=episode_return.index, dtype=float)
