"""Seeding, the run's independent seed streams, and the RNG state that a checkpoint must carry for a bit-identical
resume."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

# Seed streams (the second key of ``derived_seed``): independent RNGs for training episodes, evaluation episodes,
# the replay buffer (offline: the dataset sampler), random seed actions and ``evaluate``'s re-evaluations.
TRAIN_EPISODES, EVAL_EPISODES, BUFFER, SEED_ACTIONS, REEVALUATION = range(5)


def seed_everything(seed: int) -> None:
    """Seed python, numpy's global RNG and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def derived_seed(*keys: int) -> int:
    """An independent 31-bit seed for a stream named by integers, e.g. (run seed, 0, episode index)."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1)[0] & 0x7FFFFFFF)


def rng_state() -> dict[str, Any]:
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
