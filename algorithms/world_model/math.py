"""Pure tensor helpers of the TD-MPC2 world model (Hansen et al., 2024, "TD-MPC2", sec. 3 and appendix).

Rewards and values are predicted as discrete distributions over ``num_bins`` bins spaced evenly in
symlog space on [vmin, vmax]; targets are two-hot encoded and regressed with cross-entropy.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def symlog(x: torch.Tensor) -> torch.Tensor:
    """sign(x) log(1 + |x|): compresses large magnitudes, identity-like near 0."""
    return torch.sign(x) * torch.log1p(x.abs())


def symexp(x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`symlog`: sign(x) (exp|x| - 1)."""
    return torch.sign(x) * torch.expm1(x.abs())


def two_hot(x: torch.Tensor, num_bins: int, vmin: float, vmax: float) -> torch.Tensor:
    """Scalars (..., 1) as two-hot vectors (..., num_bins) over symlog-spaced bins: weight split between the
    two nearest bins so that the expected bin value equals symlog(x) (clipped to [vmin, vmax])."""
    bin_size = (vmax - vmin) / (num_bins - 1)
    x = symlog(x).clamp(vmin, vmax).squeeze(-1)
    position = (x - vmin) / bin_size
    lower = position.floor().clamp(max=num_bins - 2)
    upper_weight = (position - lower).unsqueeze(-1)
    lower = lower.long().unsqueeze(-1)
    out = torch.zeros(*x.shape, num_bins, device=x.device, dtype=x.dtype)
    out.scatter_(-1, lower, 1 - upper_weight)
    out.scatter_add_(-1, lower + 1, upper_weight)
    return out


def two_hot_inv(logits: torch.Tensor, num_bins: int, vmin: float, vmax: float) -> torch.Tensor:
    """Logits (..., num_bins) to scalars (..., 1): symexp of the expected bin value under softmax(logits)."""
    bins = torch.linspace(vmin, vmax, num_bins, device=logits.device, dtype=logits.dtype)
    return symexp((F.softmax(logits, dim=-1) * bins).sum(-1, keepdim=True))


def soft_ce(logits: torch.Tensor, target: torch.Tensor, num_bins: int, vmin: float, vmax: float) -> torch.Tensor:
    """Cross-entropy (..., 1) between predicted logits and the two-hot encoding of scalar targets (..., 1)."""
    return -(two_hot(target, num_bins, vmin, vmax) * F.log_softmax(logits, dim=-1)).sum(-1, keepdim=True)


def gaussian_logprob(eps: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """log N(mu + eps std; mu, std), summed over the last dimension (keepdim)."""
    return (-0.5 * eps.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1, keepdim=True)


def squash(mu: torch.Tensor, pi: torch.Tensor, log_pi: torch.Tensor):
    """tanh-squash a Gaussian sample and correct its log-probability by the tanh Jacobian."""
    mu, pi = torch.tanh(mu), torch.tanh(pi)
    log_pi = log_pi - torch.log(F.relu(1 - pi.pow(2)) + 1e-6).sum(-1, keepdim=True)
    return mu, pi, log_pi


def gumbel_softmax_sample(probs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One index per row of ``probs`` (..., K), drawn ∝ probs with the Gumbel-max trick."""
    uniform = torch.rand(probs.shape, device=probs.device, generator=generator).clamp(1e-20, 1 - 1e-7)
    gumbels = -torch.log(-torch.log(uniform))
    return (torch.log(probs.clamp_min(1e-20)) + gumbels).argmax(-1)
