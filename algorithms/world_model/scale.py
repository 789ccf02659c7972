"""Running scale of a value distribution: an EMA of its 5th-95th percentile range, floored at 1.

TD-MPC2 divides the policy-prior objective by it so that one entropy coefficient fits every reward scale;
MBDPO divides the energy-regularised return by it before the softmax ("moving (5%, 95%) percentiles").
"""

from __future__ import annotations

import torch
from torch import nn


class RunningScale(nn.Module):
    def __init__(self, tau: float = 0.01, low: float = 0.05, high: float = 0.95):
        super().__init__()
        self.tau, self.low, self.high = tau, low, high
        self.register_buffer("value", torch.ones(()))
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        flat = x.detach().float().flatten()
        q = torch.quantile(flat, torch.tensor([self.low, self.high], device=flat.device))
        spread = (q[1] - q[0]).clamp_min(1.0)
        if not self.initialised:
            self.value.copy_(spread)
            self.initialised.fill_(True)
        else:
            self.value.lerp_(spread, self.tau)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x / self.value
