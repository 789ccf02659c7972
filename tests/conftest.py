import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PYTHONHASHSEED", "0")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: see algorithms/__init__.py

from envs.rendering import configure_gl  # noqa: E402

configure_gl()  # before any test module imports dm_control directly


@pytest.fixture
def tiny_sac_args(tmp_path):
    """A SAC run small enough for CI: 3 episodes of cartpole-balance, tiny networks, a checkpoint per episode."""
    return ["--algo", "sac", "--task", "cartpole-balance", "--seed", "3", "--steps", "3000",
            "--results-dir", str(tmp_path / "results"), "seed_steps=500", "eval_every=1000", "eval_episodes=1",
            "checkpoint_every=1000", "keep_checkpoints=3", "hidden_dim=32", "batch_size=32", "progress=false",
            "log_every=500", "threads=1"]
