"""Building blocks of the TD-MPC2 world model: SimNorm, LayerNorm+Mish linear layers, a vectorised
Q-ensemble, the pixel encoder and its random-shift augmentation."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from algorithms.world_model.compute import layer_norm_mish


class SimNorm(nn.Module):
    """Simplicial normalisation (TD-MPC2 sec. 3.2): softmax over consecutive groups of ``dim`` features."""

    def __init__(self, dim: int = 8):
        super().__init__()
        self.dim = dim
        self.compute_path = "reference"  # compute.set_compute_path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        groups = x.reshape(*shape[:-1], -1, self.dim)
        if self.compute_path == "reference":
            return F.softmax(groups, dim=-1).view(shape)
        # PyTorch's CPU softmax is slow along a short contiguous dim: softmax the (..., dim, G) transpose instead
        return F.softmax(groups.transpose(-1, -2).contiguous(), dim=-2).transpose(-1, -2).reshape(shape)


class NormedLinear(nn.Linear):
    """Linear -> (Dropout) -> LayerNorm -> activation (Mish by default)."""

    def __init__(self, in_features: int, out_features: int, dropout: float = 0.0, act: nn.Module | None = None):
        super().__init__(in_features, out_features)
        self.ln = nn.LayerNorm(out_features)
        self.act = act if act is not None else nn.Mish(inplace=False)
        self.dropout = nn.Dropout(dropout) if dropout else None
        self.compute_path = "reference"  # compute.set_compute_path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = super().forward(x)
        if self.dropout is not None:
            x = self.dropout(x)
        if self.compute_path == "compiled" and isinstance(self.act, nn.Mish):
            return layer_norm_mish(x, self.ln.weight, self.ln.bias, self.ln.eps)
        return self.act(self.ln(x))


def mlp(in_dim: int, hidden: list[int], out_dim: int, act: nn.Module | None = None,
        dropout: float = 0.0) -> nn.Sequential:
    """NormedLinear hidden layers (dropout on the first only); the output layer is plain linear, or a
    NormedLinear with ``act`` (e.g. SimNorm) when given."""
    dims = [in_dim, *hidden]
    layers: list[nn.Module] = [NormedLinear(dims[i], dims[i + 1], dropout=dropout * (i == 0))
                               for i in range(len(dims) - 1)]
    layers.append(NormedLinear(dims[-1], out_dim, act=act) if act is not None else nn.Linear(dims[-1], out_dim))
    return nn.Sequential(*layers)


class EnsembleLinear(nn.Module):
    """K independent linear layers applied in one batched matmul: (K, B, in) -> (K, B, out)."""

    def __init__(self, k: int, in_features: int, out_features: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(k, in_features, out_features))
        self.bias = nn.Parameter(torch.zeros(k, 1, out_features))
        nn.init.trunc_normal_(self.weight, std=0.02)

    def forward(self, x: torch.Tensor, members: torch.Tensor | None = None) -> torch.Tensor:
        """``members`` (indices): evaluate only those members; ``x`` then has one leading entry per member."""
        if members is None:
            return torch.baddbmm(self.bias, x, self.weight)
        return torch.baddbmm(self.bias[members], x, self.weight[members])


class EnsembleNormedLinear(EnsembleLinear):
    """EnsembleLinear -> (Dropout) -> per-member LayerNorm -> Mish."""

    def __init__(self, k: int, in_features: int, out_features: int, dropout: float = 0.0):
        super().__init__(k, in_features, out_features)
        self.ln_weight = nn.Parameter(torch.ones(k, 1, out_features))
        self.ln_bias = nn.Parameter(torch.zeros(k, 1, out_features))
        self.dropout = nn.Dropout(dropout) if dropout else None
        self.compute_path = "reference"  # compute.set_compute_path

    def forward(self, x: torch.Tensor, members: torch.Tensor | None = None) -> torch.Tensor:
        x = super().forward(x, members)
        if self.dropout is not None:
            x = self.dropout(x)
        ln_weight, ln_bias = (self.ln_weight, self.ln_bias) if members is None else (self.ln_weight[members],
                                                                                    self.ln_bias[members])
        if self.compute_path == "compiled":
            return layer_norm_mish(x, ln_weight, ln_bias)
        x = F.layer_norm(x, x.shape[-1:]) * ln_weight + ln_bias
        return F.mish(x)


class QEnsemble(nn.Module):
    """K Q-networks with the architecture of :func:`mlp`, evaluated together; input (B, in) -> (K, B, out)."""

    def __init__(self, k: int, in_dim: int, hidden: list[int], out_dim: int, dropout: float):
        super().__init__()
        dims = [in_dim, *hidden]
        self.hidden = nn.ModuleList(EnsembleNormedLinear(k, dims[i], dims[i + 1], dropout=dropout * (i == 0))
                                    for i in range(len(dims) - 1))
        self.out = EnsembleLinear(k, dims[-1], out_dim)
        self.k = k

    @torch.no_grad()
    def torch_default_init(self, output_bias: bool = True) -> None:
        """Re-initialise as nn.Linear does (weights and biases U(±1/√fan_in)): the released MBDPO code's ensemble
        escapes TD-MPC2's custom initialisation (FIDELITY.md D10), so its hidden layers keep PyTorch's default and
        so does its output bias (D12: ±1/√mlp_dim; only the output weight is zeroed). ``output_bias=False`` leaves
        the output bias at 0 (the harness's earlier reading)."""
        for layer in self.hidden:
            bound = 1 / math.sqrt(layer.weight.shape[1])
            layer.weight.uniform_(-bound, bound)
            layer.bias.uniform_(-bound, bound)
        if output_bias:
            bound = 1 / math.sqrt(self.out.weight.shape[1])
            self.out.bias.uniform_(-bound, bound)

    def forward(self, x: torch.Tensor, members: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (K, ..., out) of every member, or (len(members), ..., out) of ``members`` only."""
        lead = x.shape[:-1]
        k = self.k if members is None else len(members)
        h = x.reshape(1, -1, x.shape[-1]).expand(k, -1, -1)
        for layer in self.hidden:
            h = layer(h, members)
        return self.out(h, members).reshape(k, *lead, -1)


class ShiftAug(nn.Module):
    """Random shifts of up to ``pad`` pixels (DrQ), one shift per image, of (..., C, H, W) frames.

    It draws new shifts at every call, in train and eval mode alike: TD-MPC2's released pixel encoder has it
    as its first layer (pad 3), so every encode is augmented, acting included (FIDELITY.md D5).
    """

    def __init__(self, pad: int = 3):
        super().__init__()
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-3]
        x = x.float().reshape(-1, *x.shape[-3:])
        return self._shift(x).reshape(*lead, *x.shape[1:])

    def _shift(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        assert h == w, "ShiftAug expects square images"
        x = F.pad(x, (self.pad,) * 4, mode="replicate")
        eps = 1.0 / (h + 2 * self.pad)
        arange = torch.linspace(-1.0 + eps, 1.0 - eps, h + 2 * self.pad, device=x.device)[:h]
        arange = arange.unsqueeze(0).repeat(h, 1).unsqueeze(2)
        base_grid = torch.cat([arange, arange.transpose(1, 0)], dim=2).unsqueeze(0).repeat(n, 1, 1, 1)
        shift = torch.randint(0, 2 * self.pad + 1, size=(n, 1, 1, 2), device=x.device, dtype=x.dtype)
        shift *= 2.0 / (h + 2 * self.pad)
        return F.grid_sample(x, base_grid + shift, padding_mode="zeros", align_corners=False)


class PixelEncoder(nn.Module):
    """TD-MPC2's conv encoder for 64x64 frames: four convolutions, then SimNorm of the flattened features."""

    def __init__(self, in_channels: int, num_channels: int, simnorm_dim: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, num_channels, 7, stride=2), nn.ReLU(inplace=True),
            nn.Conv2d(num_channels, num_channels, 5, stride=2), nn.ReLU(inplace=True),
            nn.Conv2d(num_channels, num_channels, 3, stride=2), nn.ReLU(inplace=True),
            nn.Conv2d(num_channels, num_channels, 3, stride=1), nn.Flatten(), SimNorm(simnorm_dim))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        lead = obs.shape[:-3]
        x = obs.reshape(-1, *obs.shape[-3:]).float() / 255.0 - 0.5
        return self.net(x).reshape(*lead, -1)


def init_weights(module: nn.Module) -> None:
    """TD-MPC2's initialisation: truncated-normal(0.02) linear weights, zero biases, small embeddings."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.uniform_(module.weight, -0.02, 0.02)


def pixel_latent_dim(obs_shape: tuple[int, ...], num_channels: int) -> int:
    """Flattened size of :class:`PixelEncoder`'s output for a (C, H, W) input."""
    size = obs_shape[-1]
    for kernel, stride in ((7, 2), (5, 2), (3, 2), (3, 1)):
        size = math.floor((size - kernel) / stride) + 1
    return num_channels * size * size
