"""The paper's fig. 3 diagnostics (definitions in shared/paper/METHOD.md, "Diagnostics"), shared by TD-MPC2
and MBDPO: policy drift between the search distribution and the policy network, and cross-TD error."""

from __future__ import annotations

import math

import torch

from algorithms.world_model import WorldModel

_EDGE = 1 - 1e-4  # tanh-Gaussian densities are evaluated strictly inside (-1, 1)


def gaussian_log_prob(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """log N(x; mean, diag(std²)), summed over the last dimension."""
    return (-0.5 * ((x - mean) / std).pow(2) - std.log() - 0.5 * math.log(2 * math.pi)).sum(-1)


def tanh_gaussian_log_prob(a: torch.Tensor, mu: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """log density of a = tanh(u), u ~ N(mu, exp(log_std)²), summed over the last dimension."""
    a = a.clamp(-_EDGE, _EDGE)
    return gaussian_log_prob(torch.atanh(a), mu, log_std.exp()) - torch.log1p(-a.pow(2)).sum(-1)


@torch.no_grad()
def policy_drift(search_mean: torch.Tensor, search_std: torch.Tensor, prior_mu: torch.Tensor,
                 prior_log_std: torch.Tensor, samples: int = 64) -> dict[str, float]:
    """E_{a~π_search}[log π_search(a) − log π_θ(a)] by Monte Carlo, and ‖μ_search − μ_θ‖ / (‖μ_θ‖ + 1e-8).

    π_search is a diagonal Gaussian over the first action (B, A) (its density taken before clipping to the
    action box, **[choice]**); π_θ is the tanh-Gaussian policy network with pre-tanh mean ``prior_mu``.
    """
    eps = torch.randn(samples, *search_mean.shape, device=search_mean.device)
    a = search_mean + search_std * eps
    log_search = gaussian_log_prob(a, search_mean, search_std)
    log_prior = tanh_gaussian_log_prob(a, prior_mu, prior_log_std)
    prior_mean = torch.tanh(prior_mu)
    relative = (search_mean - prior_mean).norm(dim=-1) / (prior_mean.norm(dim=-1) + 1e-8)
    return {"policy_drift": (log_search - log_prior).mean().item(), "mean_drift": relative.mean().item()}


@torch.no_grad()
def td_errors(model: WorldModel, z: torch.Tensor, action: torch.Tensor, reward: torch.Tensor,
              next_z: torch.Tensor, next_action_train: torch.Tensor, next_action_search: torch.Tensor,
              discount: float, task: torch.Tensor | None = None) -> dict[str, float]:
    """TD error of the learned Q with the bootstrap action Q was trained with, and with the search policy's
    (cross-TD). Q(z, a) is the ensemble mean; the bootstrap the min of two random target Qs."""
    q = model.decode(model.Q(z, action, task, return_type="all")).mean(0)
    target_train = reward + discount * model.Q(next_z, next_action_train, task, return_type="min", target=True)
    target_search = reward + discount * model.Q(next_z, next_action_search, task, return_type="min", target=True)
    return {"td_error": (q - target_train).pow(2).mean().item(),
            "cross_td_error": (q - target_search).pow(2).mean().item()}
