"""The implicit energy that keeps MBDPO's plans near the data (eq. 9, 11), in both readings.

``ClassifierEnergy`` (released code, default): a binary classifier F(z, a), buffer actions positive, the hardest
of {π(z), π(z) + 0.5·noise, uniform} negative; the planner's reward becomes r̂ + η·clip(norm(F), ±5), norm an
EMA(0.99) standardisation of F. How and on what F is trained has two readings (``ClassifierEnergy``). ``InfoNCEEnergy`` (paper text): E(z, a) trained with in-batch negatives so that
−E ≈ log π_β(a|z) + c(z); the reward becomes r̂ − λ·E.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from algorithms.world_model.layers import init_weights, mlp


CLASSIFIER_VARIANTS = ("released", "state-conditional")


class ClassifierEnergy(nn.Module):
    """F(z, a) in one of two readings (FIDELITY.md D2).

    ``released`` (default, what produced the published curves): trained inside the joint world-model loss on the
    detached dynamics rollout latents z_0..z_{H−1} (H·B rows), loss 0.5·(BCE_pos + BCE_neg); hidden layers
    trunc-normal(0.02), last layer zero (F ≡ 0 at init); output normalised by an EMA of mean and std starting
    from (0, 1). Its positives pair the time-major latents with batch-major actions (:func:`released_pairs`), so
    almost no positive is a true (z, a) pair: F in effect separates buffer actions in general from the negatives.
    ``state-conditional`` (the harness's reading): the B encoder latents of obs[0] with their own actions, its own
    Adam after the policy step, loss BCE_pos + BCE_neg, PyTorch's default initialisation, statistics initialised
    from the first batch.
    """

    def __init__(self, latent_dim: int, action_dim: int, mlp_dim: int, ema: float = 0.99, clip: float = 5.0,
                 variant: str = "released"):
        super().__init__()
        if variant not in CLASSIFIER_VARIANTS:
            raise ValueError(f"unknown classifier variant {variant!r}; valid: {', '.join(CLASSIFIER_VARIANTS)}")
        self.net = mlp(latent_dim + action_dim, [mlp_dim, mlp_dim], 1)
        self.ema, self.clip, self.variant = ema, clip, variant
        if variant == "released":
            self.net.apply(init_weights)
            nn.init.zeros_(self.net[-1].weight)
        self.register_buffer("mean", torch.zeros(()))
        self.register_buffer("std", torch.ones(()))
        self.register_buffer("initialised", torch.tensor(variant == "released"))

    def forward(self, z: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """F(z, a): the logit that a is a buffer (behaviour) action at z."""
        return self.net(torch.cat([z, action], dim=-1))

    def loss(self, z: torch.Tensor, action: torch.Tensor, prior_action: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """BCE with the buffer action positive and the hardest (highest-F) of three negatives per row."""
        noisy = (prior_action + 0.5 * torch.randn_like(prior_action)).clamp(-1, 1)
        uniform = torch.rand_like(prior_action) * 2 - 1
        negatives = torch.stack([prior_action, noisy, uniform])  # (3, B, A)
        with torch.no_grad():
            hardest = self(z.expand(3, *z.shape), negatives).squeeze(-1).argmax(0)  # (B,)
        negative = negatives[hardest, torch.arange(z.shape[0])]
        pos, neg = self(z, action).float(), self(z, negative).float()  # fp32 losses and statistics under autocast
        loss = (F.binary_cross_entropy_with_logits(pos, torch.ones_like(pos))
                + F.binary_cross_entropy_with_logits(neg, torch.zeros_like(neg)))
        if self.variant == "released":
            loss = 0.5 * loss
        self.update_statistics(torch.cat([pos, neg]).detach())
        accuracy = 0.5 * ((pos > 0).float().mean() + (neg < 0).float().mean())
        return loss, {"energy_loss": loss.item(), "energy_accuracy": accuracy.item()}

    @torch.no_grad()
    def update_statistics(self, values: torch.Tensor) -> None:
        values = values.float()  # the EMA statistics stay fp32 under bf16 autocast
        mean, std = values.mean(), values.std(unbiased=False)
        if not self.initialised:
            self.mean.copy_(mean)
            self.std.copy_(std)
            self.initialised.fill_(True)
        else:
            self.mean.lerp_(mean, 1 - self.ema)
            self.std.lerp_(std, 1 - self.ema)

    def shaping(self, z: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """clip((F − mean)/std, ±clip): added to r̂ with weight η."""
        return ((self(z, action).float() - self.mean) / (self.std + 1e-6)).clamp(-self.clip, self.clip)


def released_pairs(rollout: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The released code's positives: rollout latents (H, B, D) flattened time-major against actions (H, B, A)
    flattened batch-major, so row r pairs z[r // B, r % B] with a[r % H, r // H] (FIDELITY.md D2). Reproduced
    because it produced the published curves; ``energy_pairing=aligned`` pairs each latent with its own action."""
    return rollout.reshape(-1, rollout.shape[-1]), action.transpose(0, 1).reshape(-1, action.shape[-1])


class InfoNCEEnergy(nn.Module):
    def __init__(self, latent_dim: int, action_dim: int, mlp_dim: int, negatives: int = 64):
        super().__init__()
        self.net = mlp(latent_dim + action_dim, [mlp_dim, mlp_dim], 1)
        self.negatives = negatives

    def forward(self, z: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """E(z, a): low where the behaviour policy is likely."""
        return self.net(torch.cat([z, action], dim=-1))

    def loss(self, z: torch.Tensor, action: torch.Tensor, prior_action: torch.Tensor | None = None):
        """eq. (9): L_E = −(1/B) Σ_i log [exp(−E(z_i, a_i)) / Σ_j exp(−E(z_i, a_j))] over a sub-batch."""
        z, action = z[: self.negatives], action[: self.negatives]
        b = z.shape[0]
        logits = -self(z.unsqueeze(1).expand(b, b, -1), action.unsqueeze(0).expand(b, b, -1)).squeeze(-1).float()
        loss = F.cross_entropy(logits, torch.arange(b, device=z.device))
        accuracy = (logits.argmax(-1) == torch.arange(b, device=z.device)).float().mean()
        return loss, {"energy_loss": loss.item(), "energy_accuracy": accuracy.item()}

    def shaping(self, z: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """−E(z, a): added to r̂ with weight λ, i.e. r̃ = r̂ − λE."""
        return -self(z, action).float()
