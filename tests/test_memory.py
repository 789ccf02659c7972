"""Memory estimates of the model-size presets (multi-task, as the scaling sweep runs them) and the check against
the device: every preset builds and updates where memory allows; one that does not fit stops with the numbers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from algorithms.common.buffer import Batch
from algorithms.common.config import ConfigError
from algorithms.common.memory import MemoryEstimate, check_memory, estimate_memory, parse_memory_limit
from algorithms.common.configure import build_config
from algorithms.registry import get_algorithm
from envs.registry import get_task

ROOT = Path(__file__).resolve().parents[1]
TASKS, OBS, ACT = 80, 39, 6  # mt80's padded sizes
PAPER_SIZES = {"1.7M": 1.7e6, "6M": 6e6, "21M": 21e6, "54M": 54e6, "340M": 340e6}


def builder(algo: str, size: str, **overrides):
    cfg = build_config(algo, None, {"agent.model_size": size, **overrides})
    algorithm = get_algorithm(algo).load()
    spec = get_task("cartpole-balance", "state")

    def build(device):
        return algorithm.Agent(cfg.agent, spec, gym.spaces.Box(-np.inf, np.inf, (OBS,), np.float32),
                               gym.spaces.Box(-1.0, 1.0, (ACT,), np.float32), device, num_tasks=TASKS, task_id=0,
                               action_dims=[ACT] * TASKS, discounts=[0.99] * TASKS)
    return cfg, build


@pytest.mark.parametrize("size", list(PAPER_SIZES))
def test_mbdpo_presets_have_the_papers_parameter_counts(size):
    cfg, build = builder("mbdpo", size)
    estimate = estimate_memory(build, 1024, cfg.agent.horizon)
    # the paper's names count MBDPO's trainable parameters (world model + energy + score network), multi-task
    assert abs(estimate.trainable / PAPER_SIZES[size] - 1) < 0.15, estimate.trainable
    assert estimate.gradients == 4 * estimate.trainable and estimate.optimiser == 8 * estimate.trainable
    assert estimate.weights > estimate.gradients  # target Qs and buffers are weights without gradients


def test_estimate_grows_with_batch_and_size():
    cfg, small = builder("tdmpc2", "1.7M")
    _, large = builder("tdmpc2", "6M")
    a, b = estimate_memory(small, 256, 3), estimate_memory(small, 1024, 3)
    assert b.activations == 4 * a.activations and b.weights == a.weights
    assert estimate_memory(large, 256, 3).total > a.total


def _one_update(algo: str, size: str, batch_size: int) -> dict[str, float]:
    cfg, build = builder(algo, size)
    agent = build(torch.device("cpu"))
    horizon = cfg.agent.horizon
    rng = np.random.default_rng(0)
    batch = Batch(obs=rng.standard_normal((batch_size, horizon + 1, OBS)).astype(np.float32),
                  action=rng.uniform(-1, 1, (batch_size, horizon, ACT)).astype(np.float32),
                  reward=rng.standard_normal((batch_size, horizon)).astype(np.float32),
                  terminated=np.zeros((batch_size, horizon), np.float32), task=rng.integers(0, TASKS, batch_size))
    return agent.update(batch)


@pytest.mark.parametrize("algo", ["tdmpc2", "mbdpo"])
@pytest.mark.parametrize("size", ["1.7M", "6M"])
def test_small_presets_build_multitask_and_update(algo, size):
    metrics = _one_update(algo, size, batch_size=8)
    assert metrics and all(np.isfinite(v) for v in metrics.values())


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["tdmpc2", "mbdpo"])
@pytest.mark.parametrize("size", ["21M", "54M", "340M"])
def test_large_presets_build_multitask_and_update(algo, size):
    """By hand (minutes, ~8 GiB at 340M): every larger preset does one multi-task update on the CPU."""
    cfg, build = builder(algo, size)
    estimate = estimate_memory(build, 8, cfg.agent.horizon)
    try:
        check_memory(estimate, torch.device("cpu"), "auto", f"{algo} {size}")
    except ConfigError as err:
        pytest.skip(f"not enough memory here: {err}")
    metrics = _one_update(algo, size, batch_size=8)
    assert all(np.isfinite(v) for v in metrics.values())


MEASURE = """
import json, sys
import numpy as np, torch
sys.path.insert(0, {root!r})
from tests.test_memory import builder, OBS, ACT, TASKS
from algorithms.common.buffer import Batch
from algorithms.common.memory import estimate_memory
torch.set_num_threads(1)
cfg, build = builder("tdmpc2", "1.7M")
B, H = 512, cfg.agent.horizon
estimate = estimate_memory(build, B, H)
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
open("/proc/self/clear_refs", "w").write("5")  # the peak (VmHWM) restarts from here: imports' peaks do not count
before = status("VmRSS")
agent = build(torch.device("cpu"))
rng = np.random.default_rng(0)
batch = Batch(obs=rng.standard_normal((B, H + 1, OBS)).astype(np.float32),
              action=rng.uniform(-1, 1, (B, H, ACT)).astype(np.float32),
              reward=rng.standard_normal((B, H)).astype(np.float32), terminated=np.zeros((B, H), np.float32),
              task=rng.integers(0, TASKS, B))
for _ in range(2):
    agent.update(batch)
after = status("VmHWM")
print(json.dumps({{"measured": after - before, "estimated": estimate.total - estimate.framework}}))
"""


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux's /proc peak-RSS reset")
def test_estimate_is_close_to_a_measurement():
    # the framework allowance (768 MiB) covers the rest: library workspaces, allocator slack
    out = subprocess.run([sys.executable, "-c", MEASURE.format(root=str(ROOT))], capture_output=True, text=True,
                         cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert 0.8 * result["measured"] <= result["estimated"] <= 2 * result["measured"], result


def test_340m_estimate_is_described_and_a_small_limit_is_a_clear_error():
    cfg, build = builder("mbdpo", "340M")
    estimate = estimate_memory(build, 1024, cfg.agent.horizon)
    assert estimate.total > 10 * 2**30
    text = estimate.describe()
    assert text.startswith("about ") and "GiB" in text and "Adam" in text and "activations" in text
    with pytest.raises(ConfigError) as err:
        check_memory(estimate, torch.device("cpu"), "8GiB", "offline mbdpo (340M)")
    message = str(err.value)
    assert "offline mbdpo (340M) needs about" in message and "memory_limit is 8.0 GiB on cpu" in message
    assert "smaller agent.model_size" in message
    check_memory(estimate, torch.device("cpu"), "none", "no check")  # no error
    check_memory(estimate, torch.device("cpu"), "1TiB", "fits")


@pytest.mark.parametrize("value, expected", [("auto", "auto"), ("none", None), ("24GiB", 24 * 2**30),
                                             ("512MB", 512 * 2**20), ("2e9", 2 * 10**9)])
def test_memory_limit_values(value, expected):
    assert parse_memory_limit(value) == expected


@pytest.mark.parametrize("value", ["lots", "-1GiB", "0", "12 parsecs"])
def test_bad_memory_limit_names_the_value(value):
    with pytest.raises(ConfigError, match=f"memory_limit={value!r}: give auto"):
        parse_memory_limit(value)


def test_estimate_total_is_the_sum_of_its_parts():
    e = MemoryEstimate(parameters=10, trainable=5, weights=40, gradients=20, optimiser=40, activations=100,
                       replay=7, dataset_mapped=10**9, framework=3)
    assert e.total == 40 + 20 + 40 + 100 + 7 + 3  # the memory-mapped dataset is not counted
    assert "memory-mapped, not counted" in e.describe()
