import copy

import numpy as np
import pytest
import torch

from algorithms.common.buffer import ReplayBuffer
from algorithms.sac import Agent, Config
from algorithms.sac.agent import Actor
from envs import get_task, make_env


def make_agent(task="cartpole-balance", obs=None, **overrides):
    torch.manual_seed(0)
    spec = get_task(task, obs)
    env = make_env(task, seed=0, obs=obs)
    agent = Agent(Config(**overrides), spec, env.observation_space, env.action_space, torch.device("cpu"))
    buffer = ReplayBuffer(5000, env.observation_space.shape, env.observation_space.dtype, env.action_space.shape[0], 0)
    obs_, _ = env.reset(seed=0)
    buffer.add_first(obs_)
    for _ in range(60):
        action = env.action_space.sample()
        obs_, reward, terminated, truncated, _ = env.step(action)
        buffer.add(action, reward, terminated, obs_)
    return agent, buffer, obs_


def test_defaults_follow_reference_implementations():
    agent, _, _ = make_agent()
    cfg = agent.cfg
    assert (cfg.hidden_dim, cfg.num_layers, cfg.lr, cfg.tau, cfg.batch_size) == (256, 2, 3e-4, 0.005, 256)
    assert agent.gamma == pytest.approx(0.99) and agent.target_entropy == -1.0


def test_tanh_gaussian_log_prob_matches_change_of_variables():
    torch.manual_seed(1)
    actor = Actor(4, 3, Config(hidden_dim=16))
    features = torch.randn(1000, 4)
    torch.manual_seed(2)
    action, log_prob, _ = actor(features)
    mu, log_std = actor.net(features).chunk(2, -1)
    log_std = actor.log_std_min + 0.5 * (actor.log_std_max - actor.log_std_min) * (torch.tanh(log_std) + 1)
    dist = torch.distributions.TransformedDistribution(
        torch.distributions.Normal(mu, log_std.exp()), [torch.distributions.TanhTransform()])
    inside = action.abs() < 0.999  # away from the boundary, where atanh is ill-conditioned in float32
    expected = dist.log_prob(action.clamp(-0.999, 0.999)).sum(-1)
    assert torch.allclose(log_prob[inside.all(-1)], expected[inside.all(-1)], atol=1e-3)


def test_actions_are_bounded_and_eval_is_deterministic():
    agent, _, obs = make_agent()
    samples = np.stack([agent.act(obs, eval_mode=False) for _ in range(50)])
    assert samples.dtype == np.float32 and np.all(np.abs(samples) <= 1) and samples.std() > 0
    assert np.array_equal(agent.act(obs, eval_mode=True), agent.act(obs, eval_mode=True))


def test_updates_fit_the_critic_and_tune_the_temperature():
    agent, buffer, _ = make_agent(hidden_dim=64, batch_size=64)
    first = [agent.update(buffer)["critic_loss"] for _ in range(5)]
    for _ in range(300):
        metrics = agent.update(buffer)
    assert metrics["critic_loss"] < np.mean(first)
    # a fresh actor's entropy exceeds the target -|A|, so the temperature must have fallen from 1
    assert metrics["alpha"] < 1.0


def test_fixed_temperature_when_not_learned():
    agent, buffer, _ = make_agent(hidden_dim=32, batch_size=16, learn_alpha=False, init_alpha=0.2)
    for _ in range(5):
        metrics = agent.update(buffer)
    assert metrics["alpha"] == pytest.approx(0.2) and "alpha_loss" not in metrics


def test_pixel_agent_updates_encoder_through_critic_only():
    agent, buffer, obs = make_agent("cartpole-swingup", obs="rgb", hidden_dim=32, batch_size=8, encoder_channels=8)
    assert obs.shape == (9, 64, 64)
    before = [p.clone() for p in agent.encoder.parameters()]
    metrics = agent.update(buffer)
    assert np.isfinite(metrics["critic_loss"])
    assert any(not torch.equal(a, b) for a, b in zip(before, agent.encoder.parameters()))


def test_state_dict_round_trip():
    agent, buffer, obs = make_agent(hidden_dim=32, batch_size=16)
    for _ in range(3):
        agent.update(buffer)
    clone, _, _ = make_agent(hidden_dim=32, batch_size=16)
    clone.load_state_dict(copy.deepcopy(agent.state_dict()))  # as a checkpoint would: no shared tensors
    assert np.array_equal(clone.act(obs, eval_mode=True), agent.act(obs, eval_mode=True))
    torch.manual_seed(5)
    buffer.rng = np.random.default_rng(0)
    a = agent.update(buffer)
    torch.manual_seed(5)
    buffer.rng = np.random.default_rng(0)
    b = clone.update(buffer)
    assert a == b
