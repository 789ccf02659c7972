"""DreamerV3's networks: RMSNorm + SiLU layers with the official initialisation, the block-GRU RSSM (sec. 2),
encoders and decoders for states and 64×64 pixels, and the heads (shared/paper/DREAMERV3.md §2, §5)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from algorithms.dreamerv3 import math as dm


def trunc_normal_in_(weight: torch.Tensor, fan_in: int, outscale: float = 1.0) -> None:
    """§5: a normal truncated at ±2 std with std 1.1368/√fan_in (unit variance after truncation), × ``outscale``
    (0 for the reward and value outputs, 0.01 for the policy, 1 elsewhere)."""
    if outscale == 0.0:
        nn.init.zeros_(weight)
        return
    std = 1.1368 / math.sqrt(fan_in) * outscale
    nn.init.trunc_normal_(weight, 0.0, std, -2.0 * std, 2.0 * std)


class Linear(nn.Linear):
    def __init__(self, in_features: int, out_features: int, outscale: float = 1.0):
        super().__init__(in_features, out_features)
        trunc_normal_in_(self.weight, in_features, outscale)
        nn.init.zeros_(self.bias)


class RMSNorm(nn.Module):
    """§5: RMS normalisation with a learned scale only, eps 1e-4 (over the last dimension, or channels)."""

    def __init__(self, dim: int, eps: float = 1e-4, channels_first: bool = False):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(dim))
        self.eps, self.channels_first = eps, channels_first

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_first:
            x = x.movedim(1, -1)
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.scale
        return x.movedim(-1, 1) if self.channels_first else x


def mlp(in_dim: int, units: int, layers: int) -> nn.Sequential:
    """``layers`` × [Linear → RMSNorm → SiLU] (every hidden layer of DreamerV3)."""
    mods: list[nn.Module] = []
    for i in range(layers):
        mods += [Linear(in_dim if i == 0 else units, units), RMSNorm(units), nn.SiLU()]
    return nn.Sequential(*mods)


class BlockLinear(nn.Module):
    """A block-diagonal linear map: the input's ``blocks`` slices each map to an output slice (fan-in = full width,
    as the official initialisation counts it)."""

    def __init__(self, in_features: int, out_features: int, blocks: int, outscale: float = 1.0):
        super().__init__()
        assert in_features % blocks == 0 and out_features % blocks == 0
        self.blocks = blocks
        self.weight = nn.Parameter(torch.empty(blocks, in_features // blocks, out_features // blocks))
        self.bias = nn.Parameter(torch.zeros(out_features))
        trunc_normal_in_(self.weight, in_features, outscale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        x = x.reshape(*lead, self.blocks, -1)
        out = torch.einsum("...gi,gio->...go", x, self.weight)
        return out.reshape(*lead, -1) + self.bias


class RSSM(nn.Module):
    """Sec. 2: the recurrent state-space model with a block GRU (§2 "Block GRU") and 32 categorical latents.

    State: h (deter) and z (stoch × classes one-hots). ``img_step`` advances h with the previous z and action;
    ``prior`` predicts z from h, ``posterior`` infers z from h and the observation's tokens."""

    def __init__(self, action_dim: int, token_dim: int, deter: int, hidden: int, stoch: int, classes: int,
                 blocks: int = 8, unimix: float = 0.01):
        super().__init__()
        self.deter, self.stoch, self.classes, self.blocks, self.unimix = deter, stoch, classes, blocks, unimix
        self.in_h = nn.Sequential(Linear(deter, hidden), RMSNorm(hidden), nn.SiLU())
        self.in_z = nn.Sequential(Linear(stoch * classes, hidden), RMSNorm(hidden), nn.SiLU())
        self.in_a = nn.Sequential(Linear(action_dim, hidden), RMSNorm(hidden), nn.SiLU())
        block_in = deter // blocks + 3 * hidden
        self.dyn = BlockLinear(block_in * blocks, deter, blocks)
        self.dyn_norm = RMSNorm(deter)
        self.gates = BlockLinear(deter, 3 * deter, blocks)
        self.prior_net = nn.Sequential(mlp(deter, hidden, 1), Linear(hidden, stoch * classes))
        self.post_net = nn.Sequential(mlp(deter + token_dim, hidden, 1), Linear(hidden, stoch * classes))

    @property
    def feat_dim(self) -> int:
        return self.deter + self.stoch * self.classes

    def initial(self, batch: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        return (torch.zeros(batch, self.deter, device=device),
                torch.zeros(batch, self.stoch, self.classes, device=device))

    def img_step(self, h: torch.Tensor, z: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """The block GRU: h′ from (h, z, a) — §2: the action scaled by 1/max(1, |a|); h, z, a each embedded; the
        embedding appended to each of the blocks of h; one block layer; a block gate layer (r, c, u)."""
        action = action / torch.clamp(action.abs(), min=1.0).detach()
        x = torch.cat([self.in_h(h), self.in_z(z.flatten(-2)), self.in_a(action)], -1)
        g = self.blocks
        hb = h.reshape(*h.shape[:-1], g, -1)
        xb = x.unsqueeze(-2).expand(*x.shape[:-1], g, x.shape[-1])
        y = F.silu(self.dyn_norm(self.dyn(torch.cat([hb, xb], -1).reshape(*h.shape[:-1], -1))))
        parts = self.gates(y).reshape(*h.shape[:-1], g, 3, -1)
        reset, cand, update = (parts[..., i, :].reshape(*h.shape[:-1], -1) for i in range(3))
        reset = torch.sigmoid(reset)
        cand = torch.tanh(reset * cand)
        update = torch.sigmoid(update - 1.0)
        return update * cand + (1.0 - update) * h

    def _probs(self, logits: torch.Tensor) -> torch.Tensor:
        return dm.unimix_probs(logits.reshape(*logits.shape[:-1], self.stoch, self.classes), self.unimix)

    def prior(self, h: torch.Tensor) -> torch.Tensor:
        return self._probs(self.prior_net(h))

    def posterior(self, h: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        return self._probs(self.post_net(torch.cat([h, tokens], -1)))

    @staticmethod
    def features(h: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return torch.cat([h, z.flatten(-2)], -1)


class VectorEncoder(nn.Module):
    """§2: symlog, then 3 × [Linear → RMSNorm → SiLU]."""

    def __init__(self, obs_dim: int, units: int, layers: int = 3):
        super().__init__()
        self.net = mlp(obs_dim, units, layers)
        self.out_dim = units

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(dm.symlog(obs))


class ConvEncoder(nn.Module):
    """§2: x/255 − 0.5, then 4 × [5×5 conv stride 1 → 2×2 max-pool → RMSNorm → SiLU], 64 → 4, depth × (2, 3, 4, 4)."""

    def __init__(self, obs_shape: tuple[int, ...], depth: int):
        super().__init__()
        channels = [obs_shape[0], *(depth * m for m in (2, 3, 4, 4))]
        mods: list[nn.Module] = []
        for cin, cout in zip(channels[:-1], channels[1:]):
            conv = nn.Conv2d(cin, cout, 5, padding=2)
            trunc_normal_in_(conv.weight, cin * 25)
            nn.init.zeros_(conv.bias)
            mods += [conv, nn.MaxPool2d(2), RMSNorm(cout, channels_first=True), nn.SiLU()]
        self.net = nn.Sequential(*mods)
        self.out_dim = channels[-1] * (obs_shape[1] // 16) * (obs_shape[2] // 16)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        lead = obs.shape[:-3]
        x = obs.reshape(-1, *obs.shape[-3:]).float() / 255.0 - 0.5
        return self.net(x).reshape(*lead, -1)


class VectorDecoder(nn.Module):
    """§2: a 3-layer MLP predicting symlog(obs); loss = squared error summed over dimensions."""

    def __init__(self, feat_dim: int, obs_dim: int, units: int, layers: int = 3):
        super().__init__()
        self.net = nn.Sequential(mlp(feat_dim, units, layers), Linear(units, obs_dim))

    def loss(self, feat: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        return (self.net(feat) - dm.symlog(obs)).pow(2).sum(-1)


class ConvDecoder(nn.Module):
    """§2: features → a 4×4 seed, 3 × [nearest ×2 → 5×5 conv → RMSNorm → SiLU], ×2, 5×5 conv to the image
    channels, sigmoid; loss = squared error summed over pixels (targets x/255)."""

    def __init__(self, feat_dim: int, obs_shape: tuple[int, ...], depth: int):
        super().__init__()
        self.obs_shape = obs_shape
        self.seed_channels = depth * 4
        self.seed = Linear(feat_dim, self.seed_channels * 16)
        channels = [depth * 4, depth * 4, depth * 3, depth * 2]
        mods: list[nn.Module] = []
        for cin, cout in zip(channels[:-1], channels[1:]):
            conv = nn.Conv2d(cin, cout, 5, padding=2)
            trunc_normal_in_(conv.weight, cin * 25)
            nn.init.zeros_(conv.bias)
            mods += [nn.Upsample(scale_factor=2), conv, RMSNorm(cout, channels_first=True), nn.SiLU()]
        out = nn.Conv2d(channels[-1], obs_shape[0], 5, padding=2)
        trunc_normal_in_(out.weight, channels[-1] * 25)
        nn.init.zeros_(out.bias)
        self.net = nn.Sequential(*mods, nn.Upsample(scale_factor=obs_shape[1] // 32), out)

    def loss(self, feat: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        lead = feat.shape[:-1]
        x = self.seed(feat.reshape(-1, feat.shape[-1])).reshape(-1, self.seed_channels, 4, 4)
        pred = torch.sigmoid(self.net(x)).reshape(*lead, *self.obs_shape)
        target = obs.float() / 255.0
        return (pred - target).pow(2).sum((-3, -2, -1))


class TwoHotHead(nn.Module):
    """Reward (1 layer) and critic (3 layers) heads: 255 two-hot bins, zero-initialised output (outscale 0)."""

    def __init__(self, feat_dim: int, units: int, layers: int, bins: torch.Tensor):
        super().__init__()
        self.net = nn.Sequential(mlp(feat_dim, units, layers), Linear(units, len(bins), outscale=0.0))
        self.register_buffer("bins", bins)

    def logits(self, feat: torch.Tensor) -> torch.Tensor:
        return self.net(feat)

    def mean(self, feat: torch.Tensor) -> torch.Tensor:
        return dm.twohot_mean(self.net(feat), self.bins)

    def loss(self, feat: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return dm.twohot_loss(self.net(feat), target, self.bins)


class Actor(nn.Module):
    """§3 policy: 3 layers, then mean and std of a ``bounded_normal`` (output outscale 0.01)."""

    def __init__(self, feat_dim: int, action_dim: int, units: int, layers: int = 3,
                 min_std: float = 0.1, max_std: float = 1.0):
        super().__init__()
        self.net = nn.Sequential(mlp(feat_dim, units, layers), Linear(units, 2 * action_dim, outscale=0.01))
        self.min_std, self.max_std = min_std, max_std

    def forward(self, feat: torch.Tensor) -> torch.distributions.Independent:
        mean, std = self.net(feat).chunk(2, -1)
        return dm.bounded_normal(mean, std, self.min_std, self.max_std)
