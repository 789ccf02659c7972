"""MBDPO's diffusion planner: the reverse process (eq. 12) driven by the Monte Carlo score (eq. 10, 15) over
world-model rollouts, or by the score network (eq. 16). Batched over states; all N candidate rollouts of a
step run as one forward pass through the world model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from algorithms.mbdpo.diffusion import (DiffusionSchedule, candidate_proposal, mc_posterior_mean, mc_score,
                                        mc_weights, reverse_step_ddpm, reverse_step_deterministic)
from algorithms.tdmpc2.planner import RewardFn, estimate_value, policy_trajectories
from algorithms.world_model import WorldModel


@dataclass
class DiffusionConfig:
    horizon: int = 3
    num_samples: int = 512
    num_elites: int = 64
    num_pi_trajs: int = 24
    temperature: float = 0.5
    weighting: str = "zscore-elites"
    clip_candidates: bool = True
    sampler: str = "deterministic"
    warm_start: bool = True
    exploration_noise: float = 0.05


@dataclass
class MCEstimate:
    """One Monte Carlo score estimate: the score (B, H, A), the posterior mean Ā_0, and the weighted
    candidate distribution of the first action (mean, std: (B, A)) — the "search policy" of the diagnostics."""

    score: torch.Tensor
    posterior_mean: torch.Tensor
    first_mean: torch.Tensor
    first_std: torch.Tensor


def mc_score_estimate(a_t: torch.Tensor, alpha_bar: torch.Tensor, returns_of: Callable[[torch.Tensor], torch.Tensor],
                      cfg: DiffusionConfig, fixed_candidates: torch.Tensor | None = None,
                      scale: float | torch.Tensor = 1.0, action_mask: torch.Tensor | None = None,
                      score_eps: float = 0.0) -> MCEstimate:
    """eq. (10, 15): draw N candidates A_0 ~ N(A_t/√ᾱ_t, (1−ᾱ_t)/ᾱ_t) (clipped), replace the first P by
    ``fixed_candidates`` (policy-prior rollouts, (B, P, H, A)), weight them by their returns, and return the
    posterior mean and the score (``score_eps`` added to its denominator, :func:`mc_score`). ``returns_of`` maps candidates (B, N, H, A) to returns (B, N). Multi-task,
    ``action_mask`` (B, A) zeroes each task's padded action dims of the drawn candidates (as released)."""
    mean, std = candidate_proposal(a_t, alpha_bar)
    b, (h, a) = a_t.shape[0], a_t.shape[1:]
    candidates = mean.unsqueeze(1) + std.unsqueeze(1) * torch.randn(b, cfg.num_samples, h, a, device=a_t.device)
    if cfg.clip_candidates:
        candidates = candidates.clamp(-1, 1)
    if action_mask is not None:
        candidates = candidates * action_mask[:, None, None, :]
    if fixed_candidates is not None and fixed_candidates.shape[1] > 0:
        candidates[:, : fixed_candidates.shape[1]] = fixed_candidates
    returns = returns_of(candidates)
    weights = mc_weights(returns, cfg.temperature, cfg.weighting, cfg.num_elites, scale)
    posterior = mc_posterior_mean(candidates, weights)
    first = candidates[:, :, 0]
    first_std = (weights.unsqueeze(-1) * (first - posterior[:, :1]).pow(2)).sum(1).sqrt()
    return MCEstimate(mc_score(a_t, posterior, alpha_bar, score_eps), posterior, posterior[:, 0],
                      first_std.clamp_min(1e-3))


@dataclass
class DiffusionPlan:
    action: torch.Tensor  # (B, A), the executed first action
    plan: torch.Tensor  # (B, H, A), the final sequence (warm start of the next step)
    search_mean: torch.Tensor | None  # (B, A), the MC-reweighted candidates at the last reverse step
    search_std: torch.Tensor | None
    chain: list[tuple[int, torch.Tensor]]  # (t, A_t) visited by the reverse process


ScoreFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@torch.no_grad()
def diffusion_plan(model: WorldModel, z: torch.Tensor, schedule: DiffusionSchedule, cfg: DiffusionConfig,
                   discount: float, reward_fn: RewardFn | None = None, prev_plan: torch.Tensor | None = None,
                   task: torch.Tensor | None = None, eval_mode: bool = False, score_fn: ScoreFn | None = None,
                   return_scale: float | torch.Tensor = 1.0,
                   on_returns: Callable[[torch.Tensor], None] | None = None) -> DiffusionPlan:
    """Sample an action sequence for each latent z (B, D) by the reverse process (eq. 12).

    ``deterministic`` (released): A_{T−1} = √ᾱ_{T−1}·(previous plan shifted by one step, zeros at episode start),
    then A_{t−1} = (A_t + (1−ᾱ_t)ŝ)/√α_t. ``ddpm`` (paper): A_{T−1} ~ N(0, I), then
    A_{t−1} = (A_t + β_t s)/√α_t + √β_t ε, no noise at the last step or in evaluation. ŝ is the MC score over
    world-model rollouts (fresh policy-prior rollouts mixed in at every reverse step, as released: FIDELITY.md D3),
    or ``score_fn`` (the score network) when given.
    In training, Gaussian exploration noise is added to the executed action. ``on_returns`` sees every batch
    of candidate returns R̃ (the paper's running return scale S is fitted to them).
    """
    b, h, a = z.shape[0], cfg.horizon, model.action_dim
    steps = schedule.steps
    task_b = None if task is None else task.reshape(b, 1)
    # multi-task: each task's padded action dims stay 0 along the whole reverse process, as released
    mask = model.action_masks[task.long()].view(b, 1, a) if task is not None and model.multitask else None
    if cfg.sampler == "deterministic":
        start = torch.zeros(b, h, a, device=z.device)
        if cfg.warm_start and prev_plan is not None:
            start[:, :-1] = prev_plan[:, 1:]
        x = schedule.alphas_bar[-1].sqrt() * start
    elif cfg.sampler == "ddpm":
        x = torch.randn(b, h, a, device=z.device)
    else:
        raise ValueError(f"unknown sampler {cfg.sampler!r}; valid: 'deterministic', 'ddpm'")
    if mask is not None:
        x = x * mask

    z_samples = z.unsqueeze(1).expand(b, cfg.num_samples, -1)

    def returns_of(candidates: torch.Tensor) -> torch.Tensor:  # (B, N, H, A) -> (B, N), one batched rollout
        value = estimate_value(model, z_samples, candidates.permute(2, 0, 1, 3), discount, task_b, reward_fn)
        returns = value.squeeze(-1).nan_to_num(0)
        if on_returns is not None:
            on_returns(returns)
        return returns

    def prior_candidates() -> torch.Tensor | None:  # fresh policy-prior rollouts (B, P, H, A) at every step (D3)
        if cfg.num_pi_trajs == 0:
            return None
        pi = policy_trajectories(model, z.unsqueeze(1).expand(b, cfg.num_pi_trajs, -1), h, task_b)  # (H, B, P, A)
        return pi.permute(1, 2, 0, 3).clamp(-1, 1)

    chain: list[tuple[int, torch.Tensor]] = []
    estimate = None
    for t in range(steps - 1, 0, -1):
        chain.append((t, x))
        alpha, alpha_bar, beta = schedule.alphas[t], schedule.alphas_bar[t], schedule.betas[t]
        if score_fn is not None:
            score = score_fn(x, torch.full((b,), t, device=z.device), z)
        else:
            estimate = mc_score_estimate(x, alpha_bar, returns_of, cfg, prior_candidates(), return_scale,
                                         None if mask is None else mask[:, 0])
            score = estimate.score
        if cfg.sampler == "deterministic":
            x = reverse_step_deterministic(x, score, alpha, alpha_bar)
        else:
            noise = None if (t == 1 or eval_mode) else torch.randn_like(x)
            x = reverse_step_ddpm(x, score, alpha, beta, noise)
        if mask is not None:
            x = x * mask
    action = x[:, 0].clamp(-1, 1)
    if not eval_mode and cfg.exploration_noise > 0:
        action = (action + cfg.exploration_noise * torch.randn_like(action)).clamp(-1, 1)
    if mask is not None:
        action = action * mask[:, 0]
    return DiffusionPlan(action=action, plan=x, search_mean=None if estimate is None else estimate.first_mean,
                         search_std=None if estimate is None else estimate.first_std, chain=chain)
