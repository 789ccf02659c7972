"""The departures from the released code that FIDELITY.md lists (D2-D4, D7, D8, D10): each test fails on the
harness's behaviour before the fix."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from algorithms.common.buffer import ReplayBuffer
from algorithms.mbdpo import Agent as MBDPOAgent
from algorithms.mbdpo import Config as MBDPOConfig
from algorithms.mbdpo import planner as mbdpo_planner
from algorithms.mbdpo.diffusion import ddpm_schedule, mc_weights
from algorithms.mbdpo.energy import ClassifierEnergy, released_pairs
from algorithms.mbdpo.planner import DiffusionConfig, diffusion_plan
from algorithms.sac import Agent as SACAgent
from algorithms.sac import Config as SACConfig
from algorithms.tdmpc2 import Agent as TDMPC2Agent
from algorithms.tdmpc2 import Config as TDMPC2Config
from algorithms.world_model import WorldModel, resolve
from envs import get_task

SMALL = dict(model_size="1.7M", enc_dim=32, mlp_dim=32, latent_dim=16, num_samples=16, num_elites=4,
             num_pi_trajs=2, batch_size=8, diag_every=0)
SPEC = get_task("cartpole-balance")


def box(dim: int) -> gym.spaces.Box:
    return gym.spaces.Box(-1.0, 1.0, (dim,), np.float32)


# --- D8: the episode in progress is not replayed ----------------------------------------------------------------
def fill(buffer: ReplayBuffer, episode: int, steps: int, close: bool) -> None:
    buffer.add_first(np.full(3, episode, np.float32))
    for _ in range(steps):
        buffer.add(np.zeros(1, np.float32), 0.0, False, np.full(3, episode, np.float32))
    if close:
        buffer.end_episode()


def test_a_sampled_window_never_includes_the_open_episode():
    buffer = ReplayBuffer(1000, (3,), np.float32, 1, seed=0, include_open_episode=False)
    fill(buffer, 0, 50, close=False)
    assert not buffer.can_sample(3)  # only the open episode: nothing to sample yet
    buffer.end_episode()
    fill(buffer, 1, 400, close=False)
    episodes = np.concatenate([buffer.sample(256, horizon=3).obs[:, :, 0].ravel() for _ in range(8)])
    assert set(episodes.tolist()) == {0.0}
    buffer.end_episode()
    episodes = buffer.sample(256, horizon=3).obs[:, :, 0].ravel()
    assert set(episodes.tolist()) == {0.0, 1.0}


def test_the_open_episode_flag_survives_a_checkpoint():
    buffer = ReplayBuffer(200, (3,), np.float32, 1, seed=0, include_open_episode=False)
    fill(buffer, 0, 20, close=True)
    fill(buffer, 1, 20, close=False)
    restored = ReplayBuffer(200, (3,), np.float32, 1, seed=0, include_open_episode=False)
    restored.load_state_dict(buffer.state_dict())
    assert set(restored.sample(128, horizon=3).obs[:, :, 0].ravel().tolist()) == {0.0}


def test_model_based_agents_replay_finished_episodes_only_sac_replays_all():
    tdmpc2 = TDMPC2Agent(TDMPC2Config(**SMALL), SPEC, box(5), box(1), torch.device("cpu"))
    sac = SACAgent(SACConfig(), SPEC, box(5), box(1), torch.device("cpu"))
    assert tdmpc2.replay_open_episode is False and sac.replay_open_episode is True


# --- D4: planning iterations for large action spaces ------------------------------------------------------------
@pytest.mark.parametrize("action_dim,iterations", [(1, 6), (19, 6), (20, 8), (21, 8)])
def test_tdmpc2_plans_two_more_iterations_from_20_action_dims(action_dim, iterations):
    agent = TDMPC2Agent(TDMPC2Config(**{**SMALL, "iterations": 6}), SPEC, box(5), box(action_dim),
                        torch.device("cpu"))
    assert agent.mppi_cfg.iterations == iterations


# --- D7: MBDPO's TD target takes Q̄₀ and Q̄₁ -----------------------------------------------------------------------
def test_mbdpo_td_target_uses_the_first_two_target_qs_tdmpc2_random_ones():
    cfgs = {"mbdpo": MBDPOConfig(**{**SMALL, "num_q": 5}), "tdmpc2": TDMPC2Config(**{**SMALL, "num_q": 5})}
    for name, cfg in cfgs.items():
        agent = (MBDPOAgent if name == "mbdpo" else TDMPC2Agent)(cfg, SPEC, box(5), box(1), torch.device("cpu"))
        with torch.no_grad():  # make members 2..4 of the target ensemble predict a very low value
            agent.model._target_Qs.out.bias[2:, :, :50].fill_(30.0)
        z, a = torch.rand(64, 16), torch.rand(64, 1) * 2 - 1
        values = torch.stack([agent.target_q(z, a, None) for _ in range(20)])
        if name == "mbdpo":
            assert values.min() > -1.0  # never sees members 2..4
        else:
            assert values.min() < -5.0  # random pairs do


# --- D10: target Qs, Q initialisation, task embedding, elite weighting ---------------------------------------------
def test_target_qs_have_no_dropout_in_train_mode():
    model = WorldModel(resolve("1.7M", enc_dim=32, mlp_dim=32, latent_dim=16, dropout=0.5), (5,), 1)
    with torch.no_grad():  # non-zero outputs so that dropout would show
        for p in [*model._target_Qs.parameters(), *model._Qs.parameters()]:
            p.normal_()
    model.train()
    z, a = torch.rand(32, 16), torch.rand(32, 1)
    first = model.Q(z, a, return_type="all", target=True)
    assert torch.equal(first, model.Q(z, a, return_type="all", target=True))
    assert not torch.equal(model.Q(z, a, return_type="all"), model.Q(z, a, return_type="all"))  # online Qs do


def test_q_ensemble_hidden_init_released_mbdpo_torch_default_tdmpc2_trunc_normal():
    mbdpo = MBDPOAgent(MBDPOConfig(**SMALL), SPEC, box(5), box(1), torch.device("cpu"))
    tdmpc2 = TDMPC2Agent(TDMPC2Config(**SMALL), SPEC, box(5), box(1), torch.device("cpu"))
    first_m, first_t = mbdpo.model._Qs.hidden[0], tdmpc2.model._Qs.hidden[0]
    fan_in = first_m.weight.shape[1]
    assert first_m.weight.abs().max() <= 1 / fan_in ** 0.5 and first_m.weight.std() > 0.5 / fan_in ** 0.5
    assert first_m.bias.abs().sum() > 0 and torch.count_nonzero(first_t.bias) == 0
    assert abs(first_t.weight.std().item() - 0.02) < 0.002  # trunc-normal(0.02)
    assert torch.count_nonzero(mbdpo.model._Qs.out.weight) == 0  # the output layer stays zero in both


@pytest.mark.parametrize("num_tasks,dim", [(30, 64), (80, 96)])
def test_task_embedding_size_follows_the_released_configs(num_tasks, dim):
    agent = TDMPC2Agent(TDMPC2Config(**SMALL), SPEC, box(5), box(1), torch.device("cpu"), num_tasks=num_tasks)
    assert agent.model.task_emb.weight.shape == (num_tasks, dim)


def test_elite_weighting_with_constant_returns_keeps_exactly_the_elites_and_divides_by_one():
    returns = torch.zeros(2, 16)
    weights = mc_weights(returns, temperature=0.5, weighting="zscore-elites", elites=4)
    assert torch.equal((weights > 0).sum(-1), torch.tensor([4, 4]))  # ties: not all 16
    nearly = torch.zeros(1, 16)
    nearly[0, 0] = 1e-5  # std ~2.5e-6 < 1e-4: divided by 1, so the weights stay (almost) uniform over the elites
    weights = mc_weights(nearly, temperature=0.5, weighting="zscore-elites", elites=4)
    assert weights.max() < 0.2501


# --- D3: fresh policy-prior candidates at every reverse step ---------------------------------------------------
def test_prior_candidates_differ_between_reverse_steps(monkeypatch):
    model = WorldModel(resolve("1.7M", enc_dim=32, mlp_dim=32, latent_dim=16), (5,), 1)
    seen = []
    original = mbdpo_planner.mc_score_estimate

    def spy(a_t, alpha_bar, returns_of, cfg, fixed=None, scale=1.0, mask=None):
        seen.append(fixed.clone())
        return original(a_t, alpha_bar, returns_of, cfg, fixed, scale, mask)

    monkeypatch.setattr(mbdpo_planner, "mc_score_estimate", spy)
    cfg = DiffusionConfig(num_samples=16, num_elites=4, num_pi_trajs=3)
    diffusion_plan(model, torch.rand(1, 16), ddpm_schedule(5), cfg, 0.99, eval_mode=True)
    assert len(seen) == 4 and all(not torch.equal(seen[0], later) for later in seen[1:])
    assert all(f.abs().max() <= 1 for f in seen)


# --- D2: the released energy classifier -----------------------------------------------------------------------------
def test_released_classifier_starts_at_zero_with_unit_statistics():
    energy = ClassifierEnergy(16, 2, 32, variant="released")
    z, a = torch.rand(8, 16), torch.rand(8, 2)
    assert torch.count_nonzero(energy(z, a)) == 0
    assert energy.mean.item() == 0.0 and energy.std.item() == 1.0
    energy.update_statistics(torch.full((10,), 4.0))
    assert energy.mean.item() == pytest.approx(0.04) and energy.std.item() == pytest.approx(0.99)


def test_released_pairs_match_time_major_latents_with_batch_major_actions():
    h, b = 3, 4
    rollout = torch.arange(h * b, dtype=torch.float32).view(h, b, 1)  # value = t * B + b
    action = torch.arange(h * b, dtype=torch.float32).view(h, b, 1)
    z, a = released_pairs(rollout, action)
    assert torch.equal(z.squeeze(-1), torch.arange(h * b, dtype=torch.float32))
    rows = torch.arange(h * b)
    assert torch.equal(a.squeeze(-1), ((rows % h) * b + rows // h).float())
    assert (z.squeeze(-1) == a.squeeze(-1)).sum() < h * b  # most positives are not true pairs


def test_released_classifier_trains_inside_the_joint_loss_under_one_optimiser():
    agent = MBDPOAgent(MBDPOConfig(**SMALL), SPEC, box(5), box(1), torch.device("cpu"))
    assert agent.energy_optim is None
    energy_params = {id(p) for p in agent.energy.parameters()}
    assert energy_params <= {id(p) for group in agent.optim.param_groups for p in group["params"]}
    assert energy_params <= {id(p) for p in agent.joint_parameters}
    buffer = ReplayBuffer(200, (5,), np.float32, 1, seed=0)
    buffer.add_first(np.zeros(5, np.float32))
    for _ in range(40):
        buffer.add(np.random.uniform(-1, 1, 1).astype(np.float32), 0.1, False, np.random.rand(5).astype(np.float32))
    before = agent.energy.net[-1].weight.clone()
    metrics = agent.update(buffer)
    assert "energy_loss" in metrics and not torch.equal(before, agent.energy.net[-1].weight)


def test_state_conditional_classifier_keeps_its_own_optimiser():
    agent = MBDPOAgent(MBDPOConfig(**{**SMALL, "classifier": "state-conditional"}), SPEC, box(5), box(1),
                       torch.device("cpu"))
    assert agent.energy_optim is not None and not agent.energy_in_joint_loss


# --- D9: the score-network reading as released ---------------------------------------------------------------------
def test_score_network_reading_defaults_to_the_released_one(monkeypatch):
    cfg = MBDPOConfig(**{**SMALL, "use_score_network": True, "diffusion_steps": 4, "score_mc_samples": 8})
    agent = MBDPOAgent(cfg, SPEC, box(5), box(1), torch.device("cpu"))
    assert agent.acts_with_score_network  # from the first action
    assert agent.score_optim is None
    score_params = {id(p) for p in agent.score_net.parameters()}
    assert score_params <= {id(p) for group in agent.optim.param_groups for p in group["params"]}
    assert score_params <= {id(p) for p in agent.joint_parameters}
    assert abs(agent.score_net.net[0].weight.std().item() - 0.02) < 0.004  # trunc-normal(0.02)
    seen = []
    original = mbdpo_planner.mc_score_estimate
    monkeypatch.setattr("algorithms.mbdpo.agent.mc_score_estimate",
                        lambda a_t, ab, returns_of, c, fixed=None, scale=1.0, mask=None, eps=0.0:
                        seen.append((a_t.clone(), c, fixed, eps)) or original(a_t, ab, returns_of, c, fixed, scale,
                                                                              mask, eps))
    sequences = torch.full((8, 3, 1), 100.0)  # forward-noised, these would stay near 100: N(0, I) draws do not
    loss = agent.score_loss(torch.rand(8, 16), sequences, None)
    assert loss.requires_grad and len(seen) == 1  # one state per update
    a_t, c, fixed, eps = seen[0]
    assert fixed is None and c.num_elites == c.num_samples == 8  # no prior candidates, softmax over all
    assert c.weighting == "zscore-target" and eps == 1e-8  # D13: the released target's std + 1e-6, 1 − ᾱ + 1e-8
    assert a_t.abs().max() < 10  # N(0, I) points, not forward-noised buffer sequences


def test_score_network_harness_reading_is_an_option():
    cfg = MBDPOConfig(**{**SMALL, "use_score_network": True, "score_training": "separate", "score_warmup": 5000,
                         "score_points": "buffer"})
    agent = MBDPOAgent(cfg, SPEC, box(5), box(1), torch.device("cpu"))
    assert agent.score_optim is not None and not agent.acts_with_score_network


# --- D11: diagnostics compare the acting policy with the replay's behaviour -----------------------------------------
def test_behaviour_drift_is_zero_for_the_replayed_action_and_grows_with_distance():
    from algorithms.world_model.diagnostics import behaviour_drift

    a = torch.rand(16, 3) * 2 - 1
    assert behaviour_drift(a, a)["behaviour_drift"] == 0.0
    assert behaviour_drift(a + 0.5, a)["behaviour_drift"] == pytest.approx(0.5, rel=1e-5)


def test_mbdpo_diagnostics_use_the_acting_score_network_for_drift_and_cross_td(monkeypatch):
    cfg = MBDPOConfig(**{**SMALL, "use_score_network": True, "diffusion_steps": 4, "score_mc_samples": 8,
                         "diag_batch": 2})
    agent = MBDPOAgent(cfg, SPEC, box(5), box(1), torch.device("cpu"))
    calls = []
    original = agent.plan_diffusion

    def spy(z, eval_mode, prev_plan=None, task=None, amortised=False):
        calls.append(amortised)
        return original(z, eval_mode, prev_plan, task, amortised)

    monkeypatch.setattr(agent, "plan_diffusion", spy)
    obs, action = torch.rand(4, 2, 5), torch.rand(3, 2, 1) * 2 - 1
    metrics = agent.diagnostics(obs, action, torch.zeros(3, 2, 1), None)
    assert {"behaviour_drift", "search_prior_drift", "cross_td_error", "td_error"} <= set(metrics)
    assert calls[0] is True and calls[2] is True  # acting at z and at z' (cross-TD) with the score network


# --- D12: the Q ensemble's output bias at initialisation --------------------------------------------------------
@pytest.mark.parametrize("q_init, expect_bias", [("torch-default", True), ("torch-default-hidden", False),
                                                  ("trunc-normal", False)])
def test_q_output_bias_starts_as_the_released_code_leaves_it(q_init, expect_bias):
    """The released MBDPO ensemble's parameters escape weight_init, so its output bias keeps nn.Linear's
    U(±1/√mlp_dim) while the output weight is zeroed: every member starts at a constant logit vector of its own
    (D12). The MBDPO default is that; ``torch-default-hidden`` (the earlier reading) and TD-MPC2's trunc-normal
    start the bias at 0."""
    torch.manual_seed(0)
    cfg = resolve("1.7M", q_init=q_init)
    model = WorldModel(cfg, (5,), 1)
    bias, weight = model._Qs.out.bias, model._Qs.out.weight
    assert torch.count_nonzero(weight) == 0
    bound = 1 / np.sqrt(cfg.mlp_dim)
    if not expect_bias:
        assert torch.count_nonzero(bias) == 0
        return
    assert bias.abs().max() <= bound and bias.abs().max() > 0.9 * bound
    assert bias.std().item() == pytest.approx(bound / np.sqrt(3), rel=0.1)  # uniform: sd = bound / √3
    assert torch.equal(model._target_Qs.out.bias, bias)  # targets start as copies
    z, a = torch.randn(4, cfg.latent_dim), torch.rand(4, 1) * 2 - 1
    logits = model.Q(z, a, return_type="all")
    assert torch.allclose(logits, bias.expand_as(logits))  # a constant per member, whatever the input


def test_mbdpo_defaults_to_the_released_q_init():
    assert MBDPOConfig().q_init == "torch-default"
    assert TDMPC2Config().q_init == "trunc-normal"
