"""MBDPO the agent: every switch takes its code path, parameter counts, diagnostics, resume bit for bit."""

import csv

import numpy as np
import pytest
import torch

from algorithms.common.buffer import ReplayBuffer
from algorithms.common.config import ConfigError
from algorithms.mbdpo import Agent, Config
from algorithms.mbdpo import energy, planner
from algorithms.mbdpo.energy import ClassifierEnergy
from algorithms.mbdpo.score_net import ScoreNetwork
from envs import get_task, make_env
from tests.helpers import assert_resumes_bit_for_bit

TINY = dict(model_size="1.7M", enc_dim=32, mlp_dim=32, latent_dim=16, num_samples=16, num_elites=4,
            num_pi_trajs=2, diffusion_steps=4, batch_size=8, diag_every=0, diag_batch=2, score_mc_samples=8)


def make(**overrides):
    torch.manual_seed(0)
    cfg = Config(**{**TINY, **overrides})
    cfg.validate()
    env = make_env("cartpole-balance", seed=0)
    agent = Agent(cfg, get_task("cartpole-balance"), env.observation_space, env.action_space, torch.device("cpu"))
    buffer = ReplayBuffer(500, env.observation_space.shape, np.float32, 1, seed=0)
    obs, _ = env.reset(seed=0)
    buffer.add_first(obs)
    for _ in range(30):
        a = env.action_space.sample()
        obs, r, term, trunc, _ = env.step(a)
        buffer.add(a, r, term, obs)
    return agent, buffer, obs


class Spy:
    """Wrap a module function, recording every call's arguments."""

    def __init__(self, monkeypatch, module, name):
        self.calls = []
        real = getattr(module, name)

        def wrapper(*args, **kwargs):
            self.calls.append((args, kwargs))
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, wrapper)


def test_defaults_are_the_released_code():
    cfg = Config()
    assert (cfg.energy, cfg.eta, cfg.diffusion_steps, cfg.num_samples, cfg.num_elites, cfg.num_pi_trajs) == \
        ("classifier", 0.01, 20, 512, 64, 24)
    assert (cfg.temperature, cfg.weighting, cfg.sampler, cfg.warm_start, cfg.exploration_noise) == \
        (0.5, "zscore-elites", "deterministic", True, 0.05)
    assert (cfg.use_score_network, cfg.value_target, cfg.beta_start, cfg.beta_end) == (False, "prior", 1e-4, 1e-2)


@pytest.mark.parametrize("size, world, energy_params, score_params", [
    ("1.7M", 1.20e6, 0.20e6, 0.23e6), ("6M", 4.93e6, 0.53e6, 0.56e6)])
def test_parameter_counts_match_the_released_code(size, world, energy_params, score_params):
    from algorithms.world_model import PRESETS

    dims = PRESETS[size]
    f = ClassifierEnergy(dims["latent_dim"], 1, dims["mlp_dim"])
    s = ScoreNetwork(dims["latent_dim"], 3, 1, dims["mlp_dim"], 64)
    assert sum(p.numel() for p in f.parameters()) == pytest.approx(energy_params, rel=0.03)
    assert sum(p.numel() for p in s.parameters()) == pytest.approx(score_params, rel=0.03)


def test_act_runs_the_mc_reverse_process(monkeypatch):
    agent, _, obs = make()
    steps = Spy(monkeypatch, planner, "mc_score_estimate")
    action = agent.act(obs, eval_mode=False)
    assert len(steps.calls) == TINY["diffusion_steps"] - 1  # T − 1 reverse updates
    a_t = steps.calls[0][0][0]
    assert a_t.shape == (1, 3, 1) and abs(action[0]) <= 1 and agent.prev_plan.shape == (1, 3, 1)


@pytest.mark.parametrize("override, check", [
    ({"energy": "infonce"}, lambda agent, spies, m: isinstance(agent.energy, energy.InfoNCEEnergy)
     and "energy_loss" in m and agent.reward_fn() is not None),
    ({"eta": 0.0}, lambda agent, spies, m: agent.reward_fn() is None and "energy_loss" not in m),
    ({"energy": "infonce", "energy_lambda": 0.0}, lambda agent, spies, m: agent.reward_fn() is None),
    ({"weighting": "softmax"}, lambda agent, spies, m: all(c[0][2] == "softmax" for c in spies["mc_weights"].calls)),
    ({"sampler": "ddpm"}, lambda agent, spies, m: len(spies["reverse_step_ddpm"].calls) == 3
     and not spies["reverse_step_deterministic"].calls),
    ({"beta_schedule": "cosine"}, lambda agent, spies, m: agent.schedule.betas[0] > 1e-3),
    ({"diffusion_steps": 7}, lambda agent, spies, m: len(spies["reverse_step_deterministic"].calls) == 6),
    ({"num_samples": 24, "num_elites": 5}, lambda agent, spies, m: spies["mc_weights"].calls[0][0][0].shape == (1, 24)
     and spies["mc_weights"].calls[0][0][3] == 5),
    ({"temperature": 0.1}, lambda agent, spies, m: spies["mc_weights"].calls[0][0][1] == 0.1),
    ({"horizon": 5}, lambda agent, spies, m: agent.prev_plan.shape == (1, 5, 1)),
    ({"use_score_network": True, "score_warmup": 0}, lambda agent, spies, m: "score_loss" in m
     and not spies["mc_weights"].calls),
    ({"use_score_network": True, "score_warmup": 0, "value_target": "diffusion"},
     lambda agent, spies, m: agent.td_target.__func__ is Agent.td_target and "score_loss" in m),
])
def test_each_switch_takes_its_code_path(monkeypatch, override, check):
    agent, buffer, obs = make(**override)
    metrics = agent.update(buffer)
    spies = {name: Spy(monkeypatch, module, name) for module, name in (
        (planner, "mc_weights"), (planner, "reverse_step_ddpm"), (planner, "reverse_step_deterministic"))}
    agent.act(obs, eval_mode=False)
    assert check(agent, spies, metrics)


def test_policy_trajectories_and_clipping_and_warm_start(monkeypatch):
    agent, _, obs = make(num_pi_trajs=3)
    seen = Spy(monkeypatch, planner, "mc_score_estimate")
    agent.act(obs, eval_mode=False)
    assert seen.calls[0][0][4].shape == (1, 3, 3, 1)  # three policy-prior rollouts among the candidates
    agent_off, _, _ = make(num_pi_trajs=0)
    seen_off = Spy(monkeypatch, planner, "mc_score_estimate")
    agent_off.act(obs, eval_mode=False)
    assert seen_off.calls[0][0][4] is None
    # warm start: the second act starts from the first plan, shifted; without it, from zeros
    starts = Spy(monkeypatch, planner, "mc_score_estimate")
    agent.act(obs, eval_mode=True)
    assert starts.calls[0][0][0].abs().sum() > 0
    cold, _, _ = make(warm_start=False)
    cold.act(obs, eval_mode=True)
    cold_starts = Spy(monkeypatch, planner, "mc_score_estimate")
    cold.act(obs, eval_mode=True)
    assert cold_starts.calls[0][0][0].abs().sum() == 0


def test_clip_candidates_switch():
    torch.manual_seed(0)
    a_t = torch.full((1, 1, 1), 3.0)
    for clip, inside in ((True, True), (False, False)):
        seen = []
        cfg = planner.DiffusionConfig(horizon=1, num_samples=64, num_pi_trajs=0, clip_candidates=clip)
        planner.mc_score_estimate(a_t, torch.tensor(0.5), lambda c: seen.append(c) or c.sum(dim=(-2, -1)), cfg)
        assert (seen[0].abs() <= 1).all() == inside


def test_exploration_noise_only_in_training():
    """Same RNG state: the training action is the evaluation action plus exploration noise (the MC planner
    itself stays stochastic in evaluation, like MPPI)."""

    def act(agent, obs, eval_mode):
        agent.reset()
        torch.manual_seed(7)
        return agent.act(obs, eval_mode)

    noisy, _, obs = make(exploration_noise=0.5)
    assert not np.array_equal(act(noisy, obs, False), act(noisy, obs, True))
    quiet, _, _ = make(exploration_noise=0.0)
    assert np.array_equal(act(quiet, obs, False), act(quiet, obs, True))


def test_bad_switch_values_are_named():
    with pytest.raises(ConfigError, match="'agent.sampler' is 'ddim'; valid: deterministic, ddpm"):
        Config(sampler="ddim").validate()
    with pytest.raises(ConfigError, match="use_score_network=true"):
        Config(value_target="diffusion").validate()


@pytest.mark.parametrize("override", [{}, {"energy": "infonce", "use_score_network": True,
                                         "score_training": "separate", "score_warmup": 0}])
def test_no_gradient_outlives_an_update(override):
    """No network (world model, prior, energy, score) keeps a gradient after an update: a resumed process has
    none, so a leftover one would change the next update's grad_norm (issue 14)."""
    agent, buffer, _ = make(**override)
    agent.update(buffer)
    modules = {"model": agent.model, "energy": agent.energy, "score_net": agent.score_net}
    leftover = [f"{key}.{name}" for key, module in modules.items() if module is not None
                for name, p in module.named_parameters() if p.grad is not None]
    assert leftover == []


def test_diagnostics_are_logged():
    agent, buffer, _ = make(diag_every=1)
    metrics = agent.update(buffer)
    assert {"behaviour_drift", "search_prior_drift", "search_prior_mean_drift", "td_error", "cross_td_error", "energy_loss"} <= set(metrics)
    assert all(np.isfinite(v) for v in metrics.values())


def test_mbdpo_resumes_bit_for_bit(tmp_path, capsys):
    tiny = [f"{k}={v}" for k, v in {**TINY, "diag_every": 20, "use_score_network": True, "score_warmup": 15,
                                    "score_points": "buffer+chain", "score_batch": 2}.items()]
    base = ["train", "--algo", "mbdpo", "--task", "cartpole-balance", "--seed", "4", "--steps", "3000",
            "seed_steps=500", "eval_every=1000", "eval_episodes=1", "checkpoint_every=1000", "progress=false",
            "pretrain_updates=5", "threads=1", "log_every=500", *tiny]
    reference = assert_resumes_bit_for_bit(base, tmp_path, "runs/mbdpo/cartpole-balance/4", capsys,
                                           compare_train=True)
    train = list(csv.DictReader(open(reference / "train.csv")))
    assert any(r.get("score_loss") for r in train) and any(r.get("cross_td_error") for r in train)
