"""DreamerV3's numerics, one function per idea (Hafner et al. 2023, "Mastering diverse domains through world
models"; settings from shared/paper/DREAMERV3.md, the official code at e3f0224)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

# Sec. 2, eq. (1): symlog(x) = sign(x)·ln(|x| + 1) and its inverse symexp — the same functions TD-MPC2 uses.
from algorithms.world_model.math import symexp, symlog

__all__ = ["symexp", "symlog"]  # re-exported: DreamerV3's modules and tests read them from here


def twohot_bins(num_bins: int = 255, limit: float = 20.0) -> torch.Tensor:
    """Sec. 2 (reward and critic heads): bin centres symexp(linspace(−20, 20, 255)) in raw space (official code).

    Built as one half mirrored, so that bin −i is exactly −(bin i): ``twohot_mean`` relies on it."""
    if num_bins % 2 == 0:
        raise ValueError(f"num_bins must be odd (a bin at zero), got {num_bins}")
    half = symexp(torch.linspace(-limit, 0.0, (num_bins + 1) // 2))
    return torch.cat([half, -half[:-1].flip(0)])


def twohot_encode(x: torch.Tensor, bins: torch.Tensor) -> torch.Tensor:
    """Sec. 2, eq. (9): two-hot target — weight on the two bins around x, proportional to closeness.

    The interpolation is in the bins' own space (raw space for the official bins, as in the released code; pass
    symlog(x) with linearly spaced bins for the paper's symlog-space variant). Values outside the bins go to the
    end bins whole. ``x``: (...), returns (..., num_bins)."""
    x = x.clamp(bins[0], bins[-1])
    above = torch.searchsorted(bins, x.contiguous(), right=True).clamp(1, len(bins) - 1)
    below = above - 1
    lo, hi = bins[below], bins[above]
    weight_hi = ((x - lo) / (hi - lo)).clamp(0.0, 1.0)
    target = torch.zeros(*x.shape, len(bins), dtype=x.dtype, device=x.device)
    target.scatter_(-1, below.unsqueeze(-1), (1.0 - weight_hi).unsqueeze(-1))
    target.scatter_add_(-1, above.unsqueeze(-1), weight_hi.unsqueeze(-1))
    return target


def twohot_mean(logits: torch.Tensor, bins: torch.Tensor) -> torch.Tensor:
    """The prediction of a two-hot head: Σᵢ softmax(logits)ᵢ · binᵢ (raw space).

    Summed outwards in mirrored pairs, as the official code does: the end bins are ±4.9e8, so a plain
    left-to-right float32 sum of uniform probabilities gives −0.32 instead of 0 at initialisation, and any
    asymmetric rounding in the tails becomes a value offset."""
    probs = torch.softmax(logits, dim=-1)
    mid = bins.shape[-1] // 2
    left = (probs[..., :mid] * bins[:mid]).flip(-1)
    right = probs[..., mid + 1:] * bins[mid + 1:]
    return (probs[..., mid] * bins[mid]) + (left + right).sum(-1)


def twohot_loss(logits: torch.Tensor, target: torch.Tensor, bins: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of a two-hot head against the two-hot encoding of ``target`` (per element)."""
    return -(twohot_encode(target, bins) * torch.log_softmax(logits, dim=-1)).sum(-1)


def unimix_probs(logits: torch.Tensor, unimix: float = 0.01) -> torch.Tensor:
    """Sec. 2 (latents): (1 − u)·softmax(logits) + u/K, so every class keeps at least u/K probability."""
    probs = torch.softmax(logits, dim=-1)
    return (1.0 - unimix) * probs + unimix / logits.shape[-1]


def sample_onehot_st(probs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """A one-hot sample per categorical with straight-through gradients: forward the sample, backward ∂probs."""
    flat = probs.reshape(-1, probs.shape[-1])
    index = torch.multinomial(flat, 1, generator=generator).squeeze(-1)
    onehot = F.one_hot(index, probs.shape[-1]).to(probs.dtype).reshape(probs.shape)
    return onehot + probs - probs.detach()


def categorical_kl(p_probs: torch.Tensor, q_probs: torch.Tensor) -> torch.Tensor:
    """KL[p‖q] of factored categoricals (..., latents, classes), summed over latents and classes."""
    return (p_probs * (torch.log(p_probs) - torch.log(q_probs))).sum((-2, -1))


def kl_losses(post_probs: torch.Tensor, prior_probs: torch.Tensor, free_bits: float = 1.0
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Sec. 2, eq. (5): KL balancing with free bits, per step.

    L_dyn = max(free, KL[sg(q)‖p]) trains the prior towards the posterior; L_rep = max(free, KL[q‖sg(p)]) keeps
    the posterior predictable. Scaled 1.0 and 0.1 by the caller (official ``loss_scales``)."""
    dyn = categorical_kl(post_probs.detach(), prior_probs)
    rep = categorical_kl(post_probs, prior_probs.detach())
    return dyn.clamp(min=free_bits), rep.clamp(min=free_bits)


def lambda_returns(rewards: torch.Tensor, values: torch.Tensor, continues: torch.Tensor,
                   lam: float = 0.95) -> torch.Tensor:
    """Sec. 3, eq. (7): Rₜ = rₜ₊₁ + cₜ₊₁·[(1 − λ)·vₜ₊₁ + λ·Rₜ₊₁], bootstrapped with R_H = v_H.

    Time-major: ``rewards`` and ``continues`` at t = 1..H (what follows each state, shape (H, ...)), ``values`` at
    t = 0..H (H + 1, ...); returns R₀..R_{H−1} (H, ...). The discount γ lives inside c (c = γ·(1 − terminal))."""
    horizon = rewards.shape[0]
    out = []
    running = values[-1]
    for t in reversed(range(horizon)):
        running = rewards[t] + continues[t] * ((1.0 - lam) * values[t + 1] + lam * running)
        out.append(running)
    return torch.stack(out[::-1])


class ReturnNormalizer:
    """Sec. 3 (return normalisation): S = max(1, P95 − P5) of λ-returns, percentiles tracked by an EMA
    (rate 0.01, no debiasing) so that large returns are scaled down and small ones are not scaled up."""

    def __init__(self, rate: float = 0.01, low: float = 0.05, high: float = 0.95, limit: float = 1.0):
        self.rate, self.low, self.high, self.limit = rate, low, high, limit
        self.lo = torch.zeros(())
        self.hi = torch.zeros(())

    def update(self, returns: torch.Tensor) -> torch.Tensor:
        """Fold in a batch of returns; return the current scale S."""
        flat = returns.detach().float().reshape(-1)
        lo, hi = torch.quantile(flat, self.low).cpu(), torch.quantile(flat, self.high).cpu()
        self.lo = (1.0 - self.rate) * self.lo + self.rate * lo
        self.hi = (1.0 - self.rate) * self.hi + self.rate * hi
        return self.scale()

    def scale(self) -> torch.Tensor:
        return torch.clamp(self.hi - self.lo, min=self.limit)

    def state_dict(self) -> dict:
        return {"lo": self.lo.clone(), "hi": self.hi.clone()}

    def load_state_dict(self, state: dict) -> None:
        self.lo, self.hi = state["lo"].clone(), state["hi"].clone()


def bounded_normal(raw_mean: torch.Tensor, raw_std: torch.Tensor, min_std: float = 0.1, max_std: float = 1.0
                   ) -> torch.distributions.Independent:
    """The official actor's ``bounded_normal``: Normal(tanh(μ), (max − min)·σ(x + 2) + min), independent dims.

    Samples are not squashed; the environment side clips them to [−1, 1]."""
    std = (max_std - min_std) * torch.sigmoid(raw_std + 2.0) + min_std
    return torch.distributions.Independent(torch.distributions.Normal(torch.tanh(raw_mean), std), 1)
