"""DreamerV3 the agent: shapes, one update of each loss, pixels, presets, resume bit for bit, registration."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from algorithms.common.buffer import ReplayBuffer
from algorithms.common.config import ConfigError
from algorithms.dreamerv3 import Agent, Config
from algorithms.dreamerv3.optim import LaProp
from envs import get_task, make_env
from tests.helpers import assert_resumes_bit_for_bit

TINY = {"size": "size1m", "deter": 32, "hidden": 16, "classes": 4, "units": 16, "depth": 2, "batch_size": 2,
        "batch_length": 8, "imag_horizon": 3, "train_ratio": 16}


def _filled(task: str, steps: int = 40, obs: str | None = None, **overrides):
    spec = get_task(task, obs)
    env = make_env(task, seed=0, obs=obs)
    agent = Agent(Config(**{**TINY, **overrides}), spec, env.observation_space, env.action_space,
                  torch.device("cpu"))
    buffer = ReplayBuffer(1000, env.observation_space.shape, env.observation_space.dtype,
                          env.action_space.shape[0], seed=0)
    o, _ = env.reset(seed=0)
    buffer.add_first(o)
    for _ in range(steps):
        a = env.action_space.sample()
        o, r, term, trunc, _ = env.step(a)
        buffer.add(a, r, term, o)
    return agent, buffer, o, env


def test_act_and_update_state():
    torch.manual_seed(0)
    agent, buffer, obs, env = _filled("cartpole-balance")
    action = agent.act(obs, eval_mode=False)
    assert action.shape == env.action_space.shape and action.dtype == np.float32 and np.all(np.abs(action) <= 1)
    assert agent.act(obs, eval_mode=True).shape == env.action_space.shape
    before = {k: v.clone() for k, v in agent.modules_.state_dict().items()}
    metrics = agent.update(buffer)  # ratio 16 / (2 · 8) = exactly one update per call
    assert agent.num_updates == 1 and all(np.isfinite(v) for v in metrics.values())
    expected = {"model_loss", "rec_loss", "reward_loss", "cont_loss", "dyn_loss", "rep_loss", "policy_loss",
                "value_loss", "repval_loss", "policy_entropy", "return_scale", "imag_return"}
    assert expected <= set(metrics)
    assert metrics["dyn_loss"] >= 1.0 and metrics["rep_loss"] >= 1.0  # free bits
    after = agent.modules_.state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert any(k.startswith("rssm.") for k in changed) and any(k.startswith("actor.") for k in changed)
    assert any(k.startswith("critic.") for k in changed) and any(k.startswith("decoder.") for k in changed)


def test_train_ratio_sets_updates_per_agent_step():
    agent, buffer, _, _ = _filled("cartpole-balance", train_ratio=4)  # 4 / 16 = one update every 4 calls
    for _ in range(8):
        agent.update(buffer)
    assert agent.num_updates == 2 and agent.update_credit == pytest.approx(0.0)


def test_pixels_update():
    from envs.rendering import rendering_unavailable_reason

    if rendering_unavailable_reason():
        pytest.fail(f"pixel rendering is unavailable: {rendering_unavailable_reason()}")
    torch.manual_seed(0)
    agent, buffer, obs, env = _filled("cheetah-run", steps=12, obs="rgb")
    assert agent.pixels and obs.shape == (9, 64, 64)
    metrics = agent.update(buffer)
    assert np.isfinite(metrics["rec_loss"]) and agent.act(obs, eval_mode=True).shape == env.action_space.shape


def test_presets_and_bad_values():
    assert Config().resolved() == ("size12m", 512.0)  # the settings behind the shipped DMC scores
    assert Config(preset="official-proprio").resolved() == ("size1m", 1024.0)
    assert Config(preset="official-proprio", train_ratio=64).resolved() == ("size1m", 64.0)
    with pytest.raises(ConfigError, match="'agent.size' is 'size3m'; valid: size1m"):
        Config(size="size3m").validate()
    with pytest.raises(ConfigError, match="'agent.preset' is 'v2'"):
        Config(preset="v2").validate()
    with pytest.raises(ConfigError, match="multiple of agent.blocks"):
        _filled("cartpole-balance", deter=30)


def test_laprop_agc_and_warmup():
    p = torch.nn.Parameter(torch.ones(4))
    opt = LaProp([p], lr=1.0, warmup=10, agc=0.3)
    p.grad = torch.full((4,), 100.0)  # clipped to 0.3 · ‖θ‖ = 0.6, then RMS-normalised: step ≈ lr · 1/10
    opt.step()
    torch.testing.assert_close(p.detach(), torch.full((4,), 0.9), atol=1e-4, rtol=0)


def test_dreamerv3_resumes_bit_for_bit(tmp_path, capsys):
    tiny = [f"agent.{k}={v}" for k, v in TINY.items()]
    base = ["train", "--algo", "dreamerv3", "--task", "cartpole-balance", "--seed", "2", "--steps", "3000",
            "seed_steps=500", "eval_every=1000", "eval_episodes=1", "checkpoint_every=1000", "progress=false",
            "threads=1", "log_every=500", *tiny]
    reference = assert_resumes_bit_for_bit(base, tmp_path, "runs/dreamerv3/cartpole-balance/2", capsys)
    train = (reference / "train.csv").read_text()
    assert "policy_loss" in train and "update_ms" in train and "act_ms" in train
