"""The paper's fig. 3 diagnostics, shared by TD-MPC2 and MBDPO (each column's definition: results/README.md).

The paper's drift is between the policy that acts and the buffer's behaviour policy (the mixture of past acting
policies that collected the replay): ``behaviour_drift``. ``search_prior_drift`` compares the planner's search
distribution with the policy prior (what the harness first called policy drift; FIDELITY.md D11). Cross-TD error
is the TD error of the learned Q when the bootstrap action comes from the acting policy instead of the policy Q
was trained with."""

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
def search_prior_drift(search_mean: torch.Tensor, search_std: torch.Tensor, prior_mu: torch.Tensor,
                 prior_log_std: torch.Tensor, samples: int = 64) -> dict[str, float]:
    """``search_prior_drift`` = E_{a~π_search}[log π_search(a) − log π_θ(a)] by Monte Carlo, and
    ``search_prior_mean_drift`` = ‖μ_search − μ_θ‖ / (‖μ_θ‖ + 1e-8).

    π_search is a diagonal Gaussian over the first action (B, A) (its density taken before clipping to the
    action box, **[choice]**); π_θ is the tanh-Gaussian policy network with pre-tanh mean ``prior_mu``.
    """
    eps = torch.randn(samples, *search_mean.shape, device=search_mean.device)
    a = search_mean + search_std * eps
    log_search = gaussian_log_prob(a, search_mean, search_std)
    log_prior = tanh_gaussian_log_prob(a, prior_mu, prior_log_std)
    prior_mean = torch.tanh(prior_mu)
    relative = (search_mean - prior_mean).norm(dim=-1) / (prior_mean.norm(dim=-1) + 1e-8)
    return {"search_prior_drift": (log_search - log_prior).mean().item(),
            "search_prior_mean_drift": relative.mean().item()}


@torch.no_grad()
def behaviour_drift(acting_action: torch.Tensor, buffer_action: torch.Tensor) -> dict[str, float]:
    """RMS distance per action dimension between the action the acting policy takes now (deterministic, at buffer
    states) and the action the buffer's behaviour policy took there: √(mean_b ‖a_act − a_β‖² / A), in action
    units (0 = the acting policy reproduces the replay; 2 = opposite corners of the action box)."""
    a = acting_action.shape[-1]
    return {"behaviour_drift": ((acting_action - buffer_action).pow(2).sum(-1) / a).mean().sqrt().item()}


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
