"""MPPI planning in the latent space of the world model (TD-MPC2 sec. 3.3), batched over states.

Shapes: B states, N samples (P of them policy-prior trajectories), H horizon, A action dims. Action
sequences are (H, B, N, A); the value of a sequence is the model's discounted reward over H steps plus the
discounted Q of the policy prior's action at the last latent state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from algorithms.world_model import WorldModel
from algorithms.world_model.math import gumbel_softmax_sample


@dataclass
class MPPIConfig:
    horizon: int = 3
    iterations: int = 6
    num_samples: int = 512
    num_elites: int = 64
    num_pi_trajs: int = 24
    min_std: float = 0.05
    max_std: float = 2.0
    temperature: float = 0.5


@dataclass
class Plan:
    """The planner's result per state: the action to execute, and the final search Gaussian over the
    sequence (mean, std: (B, H, A)) used to warm-start the next step and by the diagnostics."""

    action: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor


RewardFn = Callable[[torch.Tensor, torch.Tensor, "torch.Tensor | None"], torch.Tensor]


def estimate_value(model: WorldModel, z: torch.Tensor, actions: torch.Tensor, discount: float,
                   task: torch.Tensor | None = None, reward_fn: RewardFn | None = None) -> torch.Tensor:
    """Σ_{t<H} γ^t r(z_t, a_t) + γ^H Q_avg(z_H, π(z_H)) for action sequences (H, ..., A) from latents (..., D).

    ``r`` is the model's reward, or ``reward_fn`` (MBDPO's energy-regularised reward, eq. 11)."""
    reward_fn = reward_fn or model.reward_value
    value, weight = torch.zeros_like(z[..., :1]), 1.0
    for t in range(actions.shape[0]):
        value = value + weight * reward_fn(z, actions[t], task)
        z = model.next(z, actions[t], task)
        weight *= discount
    return value + weight * model.Q(z, model.pi(z, task).action, task, return_type="avg")


def policy_trajectories(model: WorldModel, z: torch.Tensor, horizon: int, task: torch.Tensor | None) -> torch.Tensor:
    """Sampled policy-prior rollouts (H, ..., A) from latents (..., D)."""
    actions = []
    for t in range(horizon):
        actions.append(model.pi(z, task).action)
        if t < horizon - 1:
            z = model.next(z, actions[-1], task)
    return torch.stack(actions)


@torch.no_grad()
def mppi_plan(model: WorldModel, z: torch.Tensor, cfg: MPPIConfig, discount: float,
              prev_mean: torch.Tensor | None = None, task: torch.Tensor | None = None,
              eval_mode: bool = False) -> Plan:
    """Plan from latents z (B, D). ``prev_mean`` (B, H, A), the last step's plan, warm-starts the mean."""
    B, H, P, N = z.shape[0], cfg.horizon, cfg.num_pi_trajs, cfg.num_samples
    A = model.action_dim
    task_b = None if task is None else task.reshape(B, 1)  # broadcasts over the sample dimension
    actions = torch.empty(H, B, N, A, device=z.device)
    if P > 0:
        actions[:, :, :P] = policy_trajectories(model, z.unsqueeze(1).expand(B, P, -1), H, task_b)
    z_samples = z.unsqueeze(1).expand(B, N, -1)
    mean = torch.zeros(H, B, A, device=z.device)
    std = torch.full((H, B, A), cfg.max_std, device=z.device)
    if prev_mean is not None:
        mean[:-1] = prev_mean.transpose(0, 1)[1:]
    mask = None if task is None or not model.multitask else model.action_masks[task.long()]  # (B, A)
    for _ in range(cfg.iterations):
        noise = torch.randn(H, B, N - P, A, device=z.device)
        actions[:, :, P:] = (mean.unsqueeze(2) + std.unsqueeze(2) * noise).clamp(-1, 1)
        if mask is not None:
            actions = actions * mask[None, :, None]
        value = estimate_value(model, z_samples, actions, discount, task_b).nan_to_num(0).squeeze(-1)  # (B, N)
        elite_value, elite_idx = torch.topk(value, cfg.num_elites, dim=1)  # (B, E)
        elite_actions = torch.gather(actions, 2, elite_idx[None, :, :, None].expand(H, B, -1, A))
        score = torch.exp(cfg.temperature * (elite_value - elite_value.max(1, keepdim=True).values))
        score = score / score.sum(1, keepdim=True)  # (B, E)
        weights = score[None, :, :, None]
        mean = (weights * elite_actions).sum(2)
        std = (weights * (elite_actions - mean.unsqueeze(2)).pow(2)).sum(2).sqrt().clamp(cfg.min_std, cfg.max_std)
        if mask is not None:
            mean, std = mean * mask, std * mask
    chosen = gumbel_softmax_sample(score)  # (B,)
    action = elite_actions[0, torch.arange(B), chosen]
    if not eval_mode:
        action = action + std[0] * torch.randn_like(action)
    return Plan(action=action.clamp(-1, 1), mean=mean.transpose(0, 1), std=std.transpose(0, 1))
