"""Running scale of a value distribution: an EMA of its 5th-95th percentile range, floored at 1, starting at 1
(as official TD-MPC2 and the released MBDPO code: the first update already lerps, FIDELITY.md D10).

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

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        flat = x.detach().float().flatten()
        q = torch.quantile(flat, torch.tensor([self.low, self.high], device=flat.device))
        self.value.lerp_((q[1] - q[0]).clamp_min(1.0), self.tau)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x / self.value
