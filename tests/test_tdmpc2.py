"""TD-MPC2: MPPI on a hand-built model, the agent's update and diagnostics, resume bit for bit."""

import csv
import math
import numpy as np
import pytest
import torch

from algorithms.tdmpc2 import Agent, Config
from algorithms.tdmpc2.planner import MPPIConfig, estimate_value, mppi_plan
from algorithms.world_model.diagnostics import gaussian_log_prob, search_prior_drift, tanh_gaussian_log_prob
from envs import get_task, make_env
from tests.helpers import QuadraticModel as ToyModel, assert_resumes_bit_for_bit

TARGET = torch.tensor([0.6, -0.3])


def QuadraticModel():
    return ToyModel(TARGET)


def test_estimate_value_sums_discounted_rewards():
    model = QuadraticModel()
    actions = TARGET.expand(3, 1, 2).clone()
    actions[1] += torch.tensor([1.0, 0.0])  # one unit off at t = 1
    value = estimate_value(model, torch.zeros(1, 4), actions, discount=0.9)
    assert value.item() == pytest.approx(-0.9)


def test_mppi_recovers_the_maximiser_of_a_quadratic_return():
    torch.manual_seed(0)
    plan = mppi_plan(QuadraticModel(), torch.zeros(3, 4), MPPIConfig(), discount=0.99, eval_mode=True)
    assert plan.mean.shape == (3, 3, 2) and plan.action.shape == (3, 2)
    assert torch.allclose(plan.mean[:, 0], TARGET.expand(3, 2), atol=0.05)
    assert torch.allclose(plan.action, TARGET.expand(3, 2), atol=0.1)
    assert (plan.std >= 0.05 - 1e-6).all() and (plan.std[:, 0] < 0.5).all()


def test_mppi_warm_start_shifts_the_previous_plan():
    torch.manual_seed(0)
    cfg = MPPIConfig(iterations=1, num_samples=8, num_elites=8, num_pi_trajs=0, max_std=1e-6, min_std=1e-6)
    prev = torch.tensor([[[0.1, 0.1], [0.2, 0.2], [0.3, 0.3]]])
    plan = mppi_plan(QuadraticModel(), torch.zeros(1, 4), cfg, 0.99, prev_mean=prev, eval_mode=True)
    assert torch.allclose(plan.mean[0], torch.tensor([[0.2, 0.2], [0.3, 0.3], [0.0, 0.0]]), atol=1e-4)


def test_diagnostic_densities():
    x, mean, std = torch.tensor([[0.3, -0.2]]), torch.tensor([[0.0, 0.1]]), torch.tensor([[0.5, 2.0]])
    expected = torch.distributions.Normal(mean, std).log_prob(x).sum(-1)
    assert torch.allclose(gaussian_log_prob(x, mean, std), expected)
    tanh = torch.distributions.TransformedDistribution(torch.distributions.Normal(mean, std),
                                                       [torch.distributions.TanhTransform()])
    assert torch.allclose(tanh_gaussian_log_prob(x, mean, std.log()), tanh.log_prob(x).sum(-1), atol=1e-5)
    # identical distributions: the drift estimate is near zero; a shifted search is positive
    mu = torch.zeros(16, 2)
    same = search_prior_drift(torch.tanh(mu), torch.full((16, 2), 0.05), mu, torch.full((16, 2), math.log(0.05)), 4000)
    shifted = search_prior_drift(torch.full((16, 2), 0.5), torch.full((16, 2), 0.05), mu, torch.full((16, 2), math.log(0.05)), 400)
    assert abs(same["search_prior_drift"]) < 0.1 and same["search_prior_mean_drift"] < 1e-3
    assert shifted["search_prior_drift"] > 10 and shifted["search_prior_mean_drift"] > 1


TINY = dict(model_size="1.7M", enc_dim=32, mlp_dim=32, latent_dim=16, num_samples=32, num_elites=4,
            num_pi_trajs=4, iterations=2, batch_size=16, diag_every=2, diag_batch=4)


def filled(task="cartpole-balance", obs=None, **overrides):
    torch.manual_seed(0)
    env = make_env(task, seed=0, obs=obs)
    agent = Agent(Config(**{**TINY, **overrides}), get_task(task, obs), env.observation_space, env.action_space,
                  torch.device("cpu"))
    from algorithms.common.buffer import ReplayBuffer

    buffer = ReplayBuffer(2000, env.observation_space.shape, env.observation_space.dtype, env.action_space.shape[0], 0)
    o, _ = env.reset(seed=0)
    buffer.add_first(o)
    for _ in range(40):
        a = env.action_space.sample()
        o, r, term, trunc, _ = env.step(a)
        buffer.add(a, r, term, o)
    return agent, buffer, o


def test_update_reports_losses_and_diagnostics_and_learns_reward():
    agent, buffer, obs = filled()
    first = agent.update(buffer)
    assert {"consistency_loss", "reward_loss", "value_loss", "pi_loss", "grad_norm"} <= set(first)
    metrics = [agent.update(buffer) for _ in range(60)]
    assert {"behaviour_drift", "search_prior_drift", "search_prior_mean_drift", "td_error", "cross_td_error"} <= set(metrics[0])
    assert all(math.isfinite(v) for m in metrics for v in m.values())
    assert np.mean([m["reward_loss"] for m in metrics[-10:]]) < first["reward_loss"]
    action = agent.act(obs, eval_mode=False)
    assert action.shape == (1,) and action.dtype == np.float32 and abs(action[0]) <= 1
    assert agent.prev_mean.shape == (1, 3, 1)
    agent.reset()
    assert agent.prev_mean is None
    assert math.isfinite(agent.value_estimate(obs))


def test_no_gradient_outlives_an_update():
    """A resumed process starts without gradients; one left over (the policy prior's, which the joint clip sees)
    would change grad_norm after a resume (issue 14)."""
    agent, buffer, _ = filled(diag_every=0)
    for _ in range(2):
        agent.update(buffer)
        leftover = [name for name, p in agent.model.named_parameters() if p.grad is not None]
        assert leftover == []


def test_policy_prior_acting_and_pixels():
    agent, buffer, obs = filled("cartpole-swingup", obs="rgb", mpc=False, diag_every=0)
    assert agent.model.pixels
    assert np.isfinite(agent.update(buffer)["total_loss"])
    # FIDELITY.md D5: every encode is randomly shifted, so even evaluation acts vary with the same frame.
    assert len({agent.act(obs, eval_mode=True).tobytes() for _ in range(5)}) > 1


@pytest.mark.parametrize("augment", ["encoder", "batch"])
def test_pixel_augmentation_modes(augment):
    """``encoder`` (default, as released): the batch is left alone, encode shifts it; ``batch`` (the
    harness's earlier behaviour): the training batch is shifted once, acting is deterministic."""
    # fp32: this untrained tiny policy's means differ between shifts by less than bf16 resolves
    agent, buffer, obs = filled("cartpole-swingup", obs="rgb", mpc=False, diag_every=0, augment=augment,
                                shift_pad=4 if augment == "batch" else 3, precision="fp32")
    assert agent.model.augment.pad == (4 if augment == "batch" else 3)
    batch = buffer.sample(agent.cfg.batch_size, horizon=agent.cfg.horizon)
    buffer.sample = lambda *args, **kwargs: batch
    raw = torch.as_tensor(batch.obs).transpose(0, 1)
    obs_batch = agent._batch(buffer)[0]
    assert obs_batch.shape == raw.shape
    if augment == "encoder":
        assert torch.equal(obs_batch, raw)
        assert len({agent.act(obs, eval_mode=True).tobytes() for _ in range(5)}) > 1
    else:
        assert obs_batch.dtype == torch.float32 and not torch.equal(obs_batch, raw.float())
        assert np.array_equal(agent.act(obs, eval_mode=True), agent.act(obs, eval_mode=True))


def test_bad_augment_mode_is_named():
    from algorithms.common.config import ConfigError

    with pytest.raises(ConfigError, match="'agent.augment' is 'train'; valid: 'encoder', 'batch'"):
        Config(**{**TINY, "augment": "train"}).validate()


def test_seeding_pretrains_with_as_many_updates_as_seed_steps():
    agent, buffer, _ = filled(diag_every=0)
    metrics = agent.on_seeding_done(buffer, seed_steps=5)
    assert agent.num_updates == 5 and "pretrain_value_loss" in metrics


def test_bad_preset_is_named():
    with pytest.raises(Exception, match="'agent.model_size' is '7M'; valid: 1.7M, 6M, 21M, 54M, 340M"):
        Config(model_size="7M").validate()


def test_tdmpc2_resumes_bit_for_bit(tmp_path, capsys):
    tiny = [f"{k}={v}" for k, v in TINY.items()]
    base = ["train", "--algo", "tdmpc2", "--task", "cartpole-balance", "--seed", "2", "--steps", "3000",
            "seed_steps=500", "eval_every=1000", "eval_episodes=1", "checkpoint_every=1000", "progress=false",
            "pretrain_updates=10", "threads=1", "log_every=500", *tiny]
    reference = assert_resumes_bit_for_bit(base, tmp_path, "runs/tdmpc2/cartpole-balance/2", capsys,
                                           compare_train=True)
    rows = list(csv.DictReader(open(reference / "eval.csv")))
    assert rows[0]["value_estimate"] != "" and rows[0]["value_estimate"] != rows[0]["episode_return"]
    train = list(csv.DictReader(open(reference / "train.csv")))
    assert any(r.get("cross_td_error") for r in train) and any(r.get("behaviour_drift") for r in train)
