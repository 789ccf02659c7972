"""The batch type an agent's ``update`` receives: the online replay buffer (``algorithms/common/buffer.py``) and the
offline dataset cache (``offline/cache.py``) both hand it over, so it lives here, below both."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Batch:
    """A batch of sub-trajectories, batch-first: obs (B, H+1, *obs), action (B, H, A), reward/terminated (B, H);
    ``task`` (B,) int64, the task id of each sub-trajectory, from multi-task offline data (None otherwise)."""

    obs: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    terminated: np.ndarray
    task: np.ndarray | None = None
