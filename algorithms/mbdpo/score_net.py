"""The score network (eq. 16): s_θ(A_t, t, z), regressed onto Monte Carlo score targets."""

from __future__ import annotations

import torch
from torch import nn

from algorithms.mbdpo.diffusion import sinusoidal_embedding
from algorithms.world_model.layers import init_weights, mlp


class ScoreNetwork(nn.Module):
    """An MLP on [z (with the task embedding when multi-task), A_t flattened, sinusoidal embedding of t] (the
    released code's layout) -> score (B, H, A)."""

    def __init__(self, latent_dim: int, horizon: int, action_dim: int, mlp_dim: int, t_dim: int = 64,
                 released_init: bool = True):
        super().__init__()
        self.horizon, self.action_dim, self.t_dim = horizon, action_dim, t_dim
        self.net = mlp(latent_dim + horizon * action_dim + t_dim, [mlp_dim, mlp_dim], horizon * action_dim)
        if released_init:  # trunc-normal(0.02) weights, zero biases, as the released code (FIDELITY.md D9)
            self.net.apply(init_weights)

    def forward(self, a_t: torch.Tensor, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        x = torch.cat([z, a_t.flatten(-2), sinusoidal_embedding(t, self.t_dim)], dim=-1)
        return self.net(x).view(*a_t.shape)


def score_matching_loss(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """eq. (16): ‖s_θ(A_t, t, z) − ŝ(A_t, t, z)‖², averaged over dimensions and points."""
    return (predicted - target).pow(2).mean()
