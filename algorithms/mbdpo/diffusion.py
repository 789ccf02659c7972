"""MBDPO's diffusion over action sequences, one paper equation per function (shared/paper/METHOD.md).

Indexing follows the released code (and model-based diffusion, Pan et al. 2024): schedule arrays have T
entries t = 0..T-1 and the reverse process makes T-1 updates, t = T-1 .. 1. Sequences are (B, H, A).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass
class DiffusionSchedule:
    betas: torch.Tensor
    alphas: torch.Tensor
    alphas_bar: torch.Tensor

    @property
    def steps(self) -> int:
        return len(self.betas)


def ddpm_schedule(steps: int, beta_start: float = 1e-4, beta_end: float = 1e-2, kind: str = "linear",
                  device: torch.device | str = "cpu") -> DiffusionSchedule:
    """eq. (2)-(3): β_t (linear β_start → β_end, or the cosine schedule), α_t = 1 − β_t, ᾱ_t = Π_{s≤t} α_s."""
    if kind == "linear":
        betas = torch.linspace(beta_start, beta_end, steps, dtype=torch.float64)
    elif kind == "cosine":  # Nichol & Dhariwal (2021), s = 0.008
        grid = torch.linspace(0, steps, steps + 1, dtype=torch.float64) / steps
        f = torch.cos((grid + 0.008) / 1.008 * math.pi / 2) ** 2
        betas = (1 - f[1:] / f[:-1]).clamp(max=0.999)
    else:
        raise ValueError(f"unknown beta schedule {kind!r}; valid: 'linear', 'cosine'")
    alphas = 1 - betas
    return DiffusionSchedule(betas.float().to(device), alphas.float().to(device),
                             torch.cumprod(alphas, 0).float().to(device))


def forward_noise(a0: torch.Tensor, alpha_bar: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """eq. (2): A_t = √ᾱ_t A_0 + √(1 − ᾱ_t) ε."""
    return alpha_bar.sqrt() * a0 + (1 - alpha_bar).sqrt() * noise


def candidate_proposal(a_t: torch.Tensor, alpha_bar: float | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """eq. (15): the Gaussian the candidates A_0 are drawn from, N(A_t/√ᾱ_t, (1 − ᾱ_t)/ᾱ_t I): mean and std."""
    alpha_bar = torch.as_tensor(alpha_bar, dtype=a_t.dtype, device=a_t.device)
    return a_t / alpha_bar.sqrt(), ((1 - alpha_bar) / alpha_bar).sqrt().expand_as(a_t)


def mc_weights(returns: torch.Tensor, temperature: float, weighting: str = "zscore-elites", elites: int = 64,
               scale: float | torch.Tensor = 1.0) -> torch.Tensor:
    """eq. (10): self-normalised weights of the N candidates (B, N) from their returns R̃.

    ``zscore-elites`` (released code): logits (R̃ − mean)/std/τ (std < 1e-4 taken as 1), softmax over exactly the
    top ``elites`` (FIDELITY.md D10).
    ``softmax`` (paper text): softmax(R̃ / (S τ)) over all candidates, S the running return scale.
    ``zscore-target`` (the released score network's training target, FIDELITY.md D13): logits
    (R̃ − mean)/(std + 1e-6)/τ, softmax over all candidates.
    """
    if weighting == "zscore-target":
        logits = (returns - returns.mean(-1, keepdim=True)) / (returns.std(-1, keepdim=True) + 1e-6) / temperature
    elif weighting == "zscore-elites":
        std = returns.std(-1, keepdim=True)
        std = torch.where(std < 1e-4, torch.ones_like(std), std)  # (near-)constant returns: divide by 1, as released
        logits = (returns - returns.mean(-1, keepdim=True)) / std / temperature
        if elites < returns.shape[-1]:  # exactly the top ``elites`` (ties broken by topk), as released
            top = torch.topk(logits, elites, dim=-1).indices
            logits = torch.full_like(logits, float("-inf")).scatter(-1, top, logits.gather(-1, top))
    elif weighting == "softmax":
        logits = returns / (scale * temperature)
    else:
        raise ValueError(f"unknown weighting {weighting!r}; valid: 'zscore-elites', 'softmax', 'zscore-target'")
    return torch.softmax(logits, dim=-1)


def mc_posterior_mean(candidates: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """eq. (10), step 3: Ā_0 = Σ_i w_i A_0^(i); candidates (B, N, H, A), weights (B, N) -> (B, H, A)."""
    return torch.einsum("bn,bnha->bha", weights, candidates)


def mc_score(a_t: torch.Tensor, posterior_mean: torch.Tensor, alpha_bar: float | torch.Tensor,
             eps: float = 0.0) -> torch.Tensor:
    """eq. (10) / Lemma C.1: ŝ(A_t) = −(A_t − √ᾱ_t Ā_0) / (1 − ᾱ_t + eps) (the released score-network target
    adds eps = 1e-8, FIDELITY.md D13)."""
    alpha_bar = torch.as_tensor(alpha_bar, dtype=a_t.dtype, device=a_t.device)
    return -(a_t - alpha_bar.sqrt() * posterior_mean) / (1 - alpha_bar + eps)


def reverse_step_deterministic(a_t: torch.Tensor, score: torch.Tensor, alpha: float | torch.Tensor,
                               alpha_bar: float | torch.Tensor) -> torch.Tensor:
    """eq. (12), released code: A_{t−1} = (A_t + (1 − ᾱ_t) ŝ)/√α_t, which equals √ᾱ_{t−1} Ā_0 for the MC score."""
    return (a_t + (1 - alpha_bar) * score) / math.sqrt(float(alpha))


def reverse_step_ddpm(a_t: torch.Tensor, score: torch.Tensor, alpha: float | torch.Tensor, beta: float | torch.Tensor,
                      noise: torch.Tensor | None) -> torch.Tensor:
    """eq. (12), paper text: A_{t−1} = (A_t + (1 − α_t) s)/√α_t + σ_t ε with σ_t² = β_t (no noise when ε is None)."""
    out = (a_t + (1 - alpha) * score) / math.sqrt(float(alpha))
    return out if noise is None else out + math.sqrt(float(beta)) * noise


def sinusoidal_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Transformer-style embedding of diffusion steps t (B,) -> (B, dim), for the score network (eq. 16)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000) * torch.arange(half, device=t.device, dtype=torch.float32) / max(half - 1, 1))
    angles = t.float().unsqueeze(-1) * freqs
    return torch.cat([angles.sin(), angles.cos()], dim=-1)
