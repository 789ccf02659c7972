"""§4: DreamerV3's optimiser — per-tensor adaptive gradient clipping, then LaProp (RMS-normalise the gradient,
then momentum, both bias-corrected), with a linear learning-rate warm-up."""

from __future__ import annotations

import torch


class LaProp(torch.optim.Optimizer):
    def __init__(self, params, lr: float = 4e-5, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-20,
                 agc: float = 0.3, agc_floor: float = 1e-3, warmup: int = 1000):
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "agc": agc, "agc_floor": agc_floor,
                                  "warmup": warmup})

    @torch.no_grad()
    def step(self, closure=None):  # noqa: ANN001 - torch's signature
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                if group["agc"] > 0:  # 1. ‖g‖ ≤ agc · max(floor, ‖θ‖), per tensor
                    limit = group["agc"] * torch.clamp(p.norm(), min=group["agc_floor"])
                    norm = grad.norm()
                    grad = grad * torch.clamp(limit / torch.clamp(norm, min=1e-30), max=1.0)
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["nu"] = torch.zeros_like(p)
                    state["mu"] = torch.zeros_like(p)
                state["step"] += 1
                t = state["step"]
                state["nu"].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)  # 2. RMS of the gradient
                normed = grad / (torch.sqrt(state["nu"] / (1 - beta2 ** t)) + group["eps"])
                state["mu"].mul_(beta1).add_(normed, alpha=1 - beta1)  # 3. momentum of the normalised gradient
                lr = group["lr"] * min(1.0, t / max(group["warmup"], 1))  # 4. linear warm-up
                p.add_(state["mu"] / (1 - beta1 ** t), alpha=-lr)
        return None
