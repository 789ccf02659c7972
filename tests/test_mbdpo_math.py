"""MBDPO's mathematics as properties that could fail: Monte Carlo posterior mean against the analytic Gibbs
mean, concentration of the reverse process, the two energies, the score network."""

import math

import pytest
import torch

from algorithms.mbdpo.diffusion import (candidate_proposal, ddpm_schedule, forward_noise, mc_score,
                                        reverse_step_deterministic)
from algorithms.mbdpo.energy import ClassifierEnergy, InfoNCEEnergy
from algorithms.mbdpo.planner import DiffusionConfig, diffusion_plan, mc_score_estimate
from algorithms.mbdpo.score_net import ScoreNetwork, score_matching_loss
from tests.helpers import QuadraticModel

C = torch.tensor([0.4, -0.2])  # the maximiser of the toy return
K = 1.0  # R(A) = -K |A - C|²


def quadratic_return(candidates: torch.Tensor) -> torch.Tensor:
    return -K * (candidates - C).pow(2).sum(dim=(-2, -1))


def gibbs_mean(a_t: torch.Tensor, alpha_bar: float, tau: float) -> torch.Tensor:
    """Mean of ∝ N(A_0; A_t/√ᾱ, (1−ᾱ)/ᾱ)·exp(R/τ): a product of Gaussians, in closed form."""
    m, var = a_t / math.sqrt(alpha_bar), (1 - alpha_bar) / alpha_bar
    precision = 1 / var + 2 * K / tau
    return (m / var + 2 * K * C / tau) / precision


def test_schedule():
    sched = ddpm_schedule(20)
    assert sched.betas[0].item() == pytest.approx(1e-4) and sched.betas[-1].item() == pytest.approx(1e-2)
    assert torch.allclose(sched.alphas_bar, torch.cumprod(1 - sched.betas, 0))
    cosine = ddpm_schedule(10, kind="cosine")
    assert (cosine.alphas_bar[1:] < cosine.alphas_bar[:-1]).all()


def test_deterministic_step_is_model_based_diffusion():
    """(A_t + (1 − ᾱ_t) ŝ)/√α_t with the MC score equals √ᾱ_{t−1} Ā_0."""
    sched = ddpm_schedule(20)
    t = 7
    a_t, posterior = torch.randn(4, 3, 2), torch.rand(4, 3, 2)
    score = mc_score(a_t, posterior, sched.alphas_bar[t])
    out = reverse_step_deterministic(a_t, score, sched.alphas[t], sched.alphas_bar[t])
    assert torch.allclose(out, sched.alphas_bar[t - 1].sqrt() * posterior, atol=1e-5)


@pytest.mark.parametrize("alpha_bar, tau", [(0.5, 0.5), (0.9, 0.2)])
def test_mc_posterior_mean_converges_to_the_gibbs_mean_like_one_over_sqrt_n(alpha_bar, tau):
    torch.manual_seed(0)
    repeats = 200
    a_t = torch.tensor([[[0.3, 0.5]]]).expand(repeats, 1, 2)
    truth = gibbs_mean(a_t[0], alpha_bar, tau)
    errors = {}
    for n in (16, 256, 4096):
        cfg = DiffusionConfig(horizon=1, num_samples=n, num_elites=n, num_pi_trajs=0, temperature=tau,
                              weighting="softmax", clip_candidates=False)
        estimate = mc_score_estimate(a_t, torch.tensor(alpha_bar), quadratic_return, cfg)
        errors[n] = (estimate.posterior_mean - truth).pow(2).sum(-1).mean().sqrt().item()
    # 16x more samples: the RMSE should shrink ~4x (1/√N); allow noise
    assert errors[256] < errors[16] / 2.5 and errors[4096] < errors[256] / 2.5, errors
    assert errors[4096] < 0.02, errors
    # the score is the Tweedie form of the same posterior mean
    expected_score = -(a_t[0] - math.sqrt(alpha_bar) * truth) / (1 - alpha_bar)
    assert torch.allclose(estimate.score.mean(0), expected_score, atol=0.05 / (1 - alpha_bar))


def spread_after_reverse_process(tau: float, sampler: str, weighting: str = "softmax",
                                 beta_end: float = 0.3) -> tuple[float, float]:
    """A DDPM chain from N(0, I) needs a schedule whose ᾱ_T is small (here ~0.05); the released default
    (β up to 1e-2, ᾱ_T ≈ 0.9) is meant for its warm-started deterministic chain."""
    torch.manual_seed(1)
    cfg = DiffusionConfig(horizon=1, num_samples=256, num_elites=32, num_pi_trajs=0, temperature=tau,
                          weighting=weighting, sampler=sampler, exploration_noise=0.0)
    plan = diffusion_plan(QuadraticModel(C), torch.zeros(256, 4), ddpm_schedule(20, 1e-4, beta_end), cfg, discount=1.0,
                          eval_mode=True)
    distance = (plan.plan[:, 0] - C).norm(dim=-1)
    return distance.mean().item(), plan.plan[:, 0].std(0).mean().item()


def test_reverse_process_concentrates_on_the_maximiser_and_more_at_lower_temperature():
    far, far_spread = spread_after_reverse_process(5.0, "ddpm")
    mid, mid_spread = spread_after_reverse_process(0.5, "ddpm")
    near, near_spread = spread_after_reverse_process(0.02, "ddpm")
    assert near < mid < far and near < 0.1, (near, mid, far)
    assert near_spread < mid_spread < far_spread
    released, _ = spread_after_reverse_process(0.5, "deterministic", "zscore-elites", beta_end=1e-2)
    assert released < 0.1  # the released planner (warm start from zeros) also lands on the maximiser


def test_infonce_energy_recovers_the_behaviour_log_density():
    """−E(z, a) ≈ log π_β(a|z) + c(z) for a Gaussian behaviour policy: per-state rank correlation > 0.9."""
    torch.manual_seed(0)
    energy = InfoNCEEnergy(latent_dim=2, action_dim=1, mlp_dim=64, negatives=128)
    optim = torch.optim.Adam(energy.parameters(), lr=3e-3)

    def behaviour_mean(z):
        return 0.8 * torch.tanh(2 * z[..., :1] - z[..., 1:])

    for _ in range(800):
        z = torch.rand(128, 2) * 2 - 1
        a = (behaviour_mean(z) + 0.25 * torch.randn(128, 1)).clamp(-1, 1)
        loss, _ = energy.loss(z, a)
        optim.zero_grad()
        loss.backward()
        optim.step()
    grid = torch.linspace(-0.9, 0.9, 41).unsqueeze(-1)
    correlations = []
    for z in torch.rand(10, 2) * 2 - 1:
        log_density = -((grid - behaviour_mean(z)) ** 2).squeeze(-1) / (2 * 0.25**2)
        with torch.no_grad():
            neg_energy = energy.shaping(z.expand(41, 2), grid).squeeze(-1)
        correlations.append(spearman(neg_energy, log_density))
    assert min(correlations) > 0.9, correlations


def spearman(x: torch.Tensor, y: torch.Tensor) -> float:
    rx, ry = x.argsort().argsort().float(), y.argsort().argsort().float()
    rx, ry = rx - rx.mean(), ry - ry.mean()
    return (rx @ ry / (rx.norm() * ry.norm())).item()


def test_classifier_energy_ranks_buffer_actions_above_uniform_ones():
    torch.manual_seed(0)
    energy = ClassifierEnergy(latent_dim=2, action_dim=1, mlp_dim=64)
    optim = torch.optim.Adam(energy.parameters(), lr=3e-3)
    for _ in range(400):
        z = torch.rand(128, 2) * 2 - 1
        a = (0.5 * z[:, :1] + 0.1 * torch.randn(128, 1)).clamp(-1, 1)
        loss, metrics = energy.loss(z, a, prior_action=torch.rand(128, 1) * 2 - 1)
        optim.zero_grad()
        loss.backward()
        optim.step()
    z = torch.rand(500, 2) * 2 - 1
    with torch.no_grad():
        data = energy.shaping(z, 0.5 * z[:, :1]).squeeze(-1)
        uniform = energy.shaping(z, torch.rand(500, 1) * 2 - 1).squeeze(-1)
    auc = (data.unsqueeze(1) > uniform.unsqueeze(0)).float().mean().item()
    assert auc > 0.85 and metrics["energy_accuracy"] > 0.7
    assert data.abs().max() <= energy.clip  # the shaping is clipped


def test_score_network_fits_mc_targets_and_generalises():
    torch.manual_seed(0)
    sched = ddpm_schedule(20)
    cfg = DiffusionConfig(horizon=1, num_samples=2048, num_pi_trajs=0, num_elites=2048, temperature=0.5,
                          weighting="softmax", clip_candidates=False)

    def points(n):
        z = torch.rand(n, 4) * 2 - 1
        t = torch.randint(1, 20, (n,))
        a_t = forward_noise(torch.rand(n, 1, 2) * 2 - 1, sched.alphas_bar[t].view(n, 1, 1), torch.randn(n, 1, 2))
        targets = torch.cat([mc_score_estimate(a_t[i:i + 1], sched.alphas_bar[t[i]],
                                               lambda c, zi=z[i]: -(c - zi[:2]).pow(2).sum(dim=(-2, -1)), cfg).score
                             for i in range(n)])
        return z, a_t, t, targets

    train, held_out = points(400), points(100)
    net = ScoreNetwork(latent_dim=4, horizon=1, action_dim=2, mlp_dim=128, t_dim=16)
    optim = torch.optim.Adam(net.parameters(), lr=2e-3)
    z, a_t, t, target = train
    first = score_matching_loss(net(a_t, t, z), target).item()
    for _ in range(1500):
        loss = score_matching_loss(net(a_t, t, z), target)
        optim.zero_grad()
        loss.backward()
        optim.step()
    assert loss.item() < first / 10
    z, a_t, t, target = held_out
    with torch.no_grad():
        residual = score_matching_loss(net(a_t, t, z), target).item()
    assert residual < 0.1 * target.var().item(), (residual, target.var().item())


def test_candidate_proposal():
    mean, std = candidate_proposal(torch.tensor([[0.9]]), 0.81)
    assert mean.item() == pytest.approx(1.0) and std.item() == pytest.approx(math.sqrt(0.19 / 0.81))
