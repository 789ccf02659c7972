"""The TD-MPC2 latent world model (Hansen et al., 2024), shared by TD-MPC2 and MBDPO (MBDPO eq. 1, 14).

Components, named as in the paper: task embedding e (multi-task only; dim 96, norm <= 1), encoder
z = h(s, e) with SimNorm output, latent dynamics z' = d(z, a, e) with SimNorm output, reward R(z, a, e) and a
Q-ensemble Q_k(z, a, e) as discrete two-hot distributions, an optional termination head, and the policy
prior pi(z, e) (a tanh-Gaussian). Target Qs are an EMA of the Qs. Every head takes an optional ``task``
tensor of task ids; in multi-task use observations are zero-padded to the largest task and actions masked.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from algorithms.world_model import math as wm_math
from algorithms.world_model.layers import (PixelEncoder, QEnsemble, ShiftAug, SimNorm, init_weights, mlp,
                                           pixel_latent_dim)
from algorithms.world_model.presets import WorldModelConfig


@dataclass
class PolicyOutput:
    """A policy-prior draw: deterministic action tanh(mu), a squashed sample, its log-probability and the
    entropies TD-MPC2's policy loss uses (``scaled_entropy`` is scaled by the number of action dims)."""

    mean: torch.Tensor
    action: torch.Tensor
    log_prob: torch.Tensor
    mu: torch.Tensor
    log_std: torch.Tensor
    entropy: torch.Tensor
    scaled_entropy: torch.Tensor


class WorldModel(nn.Module):
    def __init__(self, cfg: WorldModelConfig, obs_shape: tuple[int, ...], action_dim: int, num_tasks: int = 1,
                 action_dims: list[int] | None = None):
        super().__init__()
        self.cfg = cfg
        self.action_dim = action_dim
        self.multitask = num_tasks > 1
        task_dim = cfg.task_dim if self.multitask else 0
        self.task_dim = task_dim
        if self.multitask:
            self.task_emb = nn.Embedding(num_tasks, task_dim, max_norm=1.0)
            masks = torch.zeros(num_tasks, action_dim)
            for i, dim in enumerate(action_dims or [action_dim] * num_tasks):
                masks[i, :dim] = 1.0
            self.register_buffer("action_masks", masks)
        latent, hidden = cfg.latent_dim, [cfg.mlp_dim, cfg.mlp_dim]
        simnorm = SimNorm(cfg.simnorm_dim)
        self.pixels = len(obs_shape) == 3
        if self.pixels:
            conv = PixelEncoder(obs_shape[0], cfg.num_channels, cfg.simnorm_dim)
            flat = pixel_latent_dim(obs_shape, cfg.num_channels)
            # TD-MPC2's conv features are 512 wide; other latent sizes get a SimNorm projection.
            self._encoder = conv if flat == latent and not task_dim else nn.Sequential(
                conv, mlp(flat + task_dim, [], latent, act=SimNorm(cfg.simnorm_dim)))
            self._pixel_task_concat = bool(task_dim)
            # FIDELITY.md D5: "encoder" shifts inside encode() (as released), "batch" leaves it to the agent.
            self.augment = ShiftAug(cfg.shift_pad)
            self.augment_in_encoder = cfg.augment == "encoder"
        else:
            enc_hidden = [cfg.enc_dim] * max(cfg.num_enc_layers - 1, 1)
            self._encoder = mlp(obs_shape[0] + task_dim, enc_hidden, latent, act=simnorm)
        self._dynamics = mlp(latent + action_dim + task_dim, hidden, latent, act=SimNorm(cfg.simnorm_dim))
        self._reward = mlp(latent + action_dim + task_dim, hidden, cfg.num_bins)
        self._termination = mlp(latent + task_dim, hidden, 1) if cfg.termination else None
        self._pi = mlp(latent + task_dim, hidden, 2 * action_dim)
        self._Qs = QEnsemble(cfg.num_q, latent + action_dim + task_dim, hidden, cfg.num_bins, cfg.dropout)
        self.apply(init_weights)
        # Zero-initialised output layers make the first reward and value predictions exactly 0.
        nn.init.zeros_(self._reward[-1].weight)
        nn.init.zeros_(self._Qs.out.weight)
        if cfg.q_init in ("torch-default", "torch-default-hidden"):
            self._Qs.torch_default_init(output_bias=cfg.q_init == "torch-default")
        self._target_Qs = copy.deepcopy(self._Qs).requires_grad_(False).eval()
        self.compute_path = "reference"  # compute.set_compute_path: not reference = only the Q members a result uses

    def train(self, mode: bool = True) -> WorldModel:
        """Train/eval mode for every part but the target Qs, which stay in eval mode: no dropout in TD targets
        (FIDELITY.md D10)."""
        super().train(mode)
        self._target_Qs.eval()
        return self

    # --- task conditioning -----------------------------------------------------------------------------------
    def task_emb_of(self, x: torch.Tensor, task: torch.Tensor | None) -> torch.Tensor:
        """Concatenate the task embedding to ``x`` (..., D) when multi-task. ``task`` holds task ids whose
        shape broadcasts to ``x.shape[:-1]`` from the right (e.g. (B,) for x of (H, B, D))."""
        if not self.multitask:
            return x
        emb = self.task_emb(task.long())
        return torch.cat([x, emb.expand(*x.shape[:-1], -1)], dim=-1)

    def mask_action(self, action: torch.Tensor, task: torch.Tensor | None) -> torch.Tensor:
        if not self.multitask:
            return action
        return action * self.action_masks[task.long()]

    # --- heads ----------------------------------------------------------------------------------------------
    def encode(self, obs: torch.Tensor, task: torch.Tensor | None = None) -> torch.Tensor:
        """z = h(s, e); pixels get a fresh random shift first when ``cfg.augment == "encoder"``."""
        if self.pixels:
            if self.augment_in_encoder:
                obs = self.augment(obs)
            if self.multitask:
                conv, head = self._encoder[0], self._encoder[1]
                return head(self.task_emb_of(conv(obs), task))
            return self._encoder(obs)
        return self._encoder(self.task_emb_of(obs, task))

    def next(self, z: torch.Tensor, action: torch.Tensor, task: torch.Tensor | None = None) -> torch.Tensor:
        """z' = d(z, a, e)."""
        return self._dynamics(self.task_emb_of(torch.cat([z, action], dim=-1), task))

    def reward(self, z: torch.Tensor, action: torch.Tensor, task: torch.Tensor | None = None) -> torch.Tensor:
        """Reward logits over the two-hot bins."""
        return self._reward(self.task_emb_of(torch.cat([z, action], dim=-1), task))

    def reward_value(self, z: torch.Tensor, action: torch.Tensor, task: torch.Tensor | None = None) -> torch.Tensor:
        return self.decode(self.reward(z, action, task))

    def termination(self, z: torch.Tensor, task: torch.Tensor | None = None) -> torch.Tensor:
        """Termination logit (only with ``cfg.termination``)."""
        if self._termination is None:
            raise RuntimeError("this world model has no termination head (termination=false)")
        return self._termination(self.task_emb_of(z, task))

    def decode(self, logits: torch.Tensor) -> torch.Tensor:
        """Two-hot logits to scalars, in fp32 whatever the logits' precision."""
        return wm_math.two_hot_inv(logits.float(), self.cfg.num_bins, self.cfg.vmin, self.cfg.vmax)

    def soft_ce(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return wm_math.soft_ce(logits.float(), target.float(), self.cfg.num_bins, self.cfg.vmin, self.cfg.vmax)

    def pi(self, z: torch.Tensor, task: torch.Tensor | None = None) -> PolicyOutput:
        """The policy prior: a tanh-Gaussian with log-std squashed into [log_std_min, log_std_max]."""
        mu, log_std = self._pi(self.task_emb_of(z, task)).float().chunk(2, dim=-1)  # the Gaussian in fp32
        cfg = self.cfg
        log_std = cfg.log_std_min + 0.5 * (cfg.log_std_max - cfg.log_std_min) * (torch.tanh(log_std) + 1)
        eps = torch.randn_like(mu)
        if self.multitask:
            mask = self.action_masks[task.long()].expand_as(mu)
            mu, eps, log_std = mu * mask, eps * mask, log_std * mask
            size = mask.sum(-1, keepdim=True)
        else:
            size = torch.full_like(mu[..., :1], mu.shape[-1])
        log_prob = wm_math.gaussian_logprob(eps, log_std)
        scaled_log_prob = log_prob * size
        action = mu + eps * log_std.exp()
        mean, action, log_prob_squashed = wm_math.squash(mu, action, log_prob)
        entropy_scale = scaled_log_prob / (log_prob_squashed + 1e-8)
        return PolicyOutput(mean=mean, action=action, log_prob=log_prob_squashed, mu=mu, log_std=log_std,
                            entropy=-log_prob_squashed, scaled_entropy=-log_prob_squashed * entropy_scale)

    def Q(self, z: torch.Tensor, action: torch.Tensor, task: torch.Tensor | None = None, return_type: str = "min",
          target: bool = False, detach: bool = False, generator: torch.Generator | None = None,
          members: tuple[int, int] | None = None) -> torch.Tensor:
        """Q-values: ``all`` logits of every member (K, ..., bins); ``min``/``avg`` of two random members, or of
        ``members`` when given. On the fast compute path only those two members are evaluated."""
        if return_type not in ("all", "min", "avg"):
            raise ValueError(f"unknown return_type {return_type!r}; valid: 'all', 'min', 'avg'")
        x = self.task_emb_of(torch.cat([z, action], dim=-1), task)
        pair = None
        if return_type != "all" and self.compute_path != "reference":
            pair = self._q_pair(generator, members, x.device)
        if target:
            logits = self._target_Qs(x, pair)
        elif detach:  # gradients reach the action (for the policy loss) but not the Q parameters
            params = {name: p.detach() for name, p in self._Qs.named_parameters()}
            logits = torch.func.functional_call(self._Qs, params, (x, pair))
        else:
            logits = self._Qs(x, pair)
        if return_type == "all":
            return logits
        if pair is None:  # reference path: all K members were evaluated, two are used
            logits = logits[self._q_pair(generator, members, x.device)]
        values = self.decode(logits)
        return values.min(0).values if return_type == "min" else values.mean(0)

    def _q_pair(self, generator: torch.Generator | None, members: tuple[int, int] | None,
                device: torch.device) -> torch.Tensor:
        """The two members a ``min``/``avg`` uses: ``members``, or two drawn at random (CPU generator)."""
        if members is not None:
            return torch.tensor(members, device=device)
        return torch.randperm(self.cfg.num_q, generator=generator, device="cpu")[:2].to(device)

    @torch.no_grad()
    def soft_update_target_Q(self) -> None:
        """Q̄ <- (1 - tau) Q̄ + tau Q."""
        for p, p_target in zip(self._Qs.parameters(), self._target_Qs.parameters()):
            p_target.lerp_(p, self.cfg.tau)

    # --- bookkeeping ------------------------------------------------------------------------------------------
    def parameter_groups(self) -> dict[str, int]:
        """Learnable parameters per component (target Qs excluded: they are not learned)."""
        parts = {"encoder": self._encoder, "dynamics": self._dynamics, "reward": self._reward, "pi": self._pi,
                 "Qs": self._Qs}
        if self._termination is not None:
            parts["termination"] = self._termination
        if self.multitask:
            parts["task_emb"] = self.task_emb
        return {name: sum(p.numel() for p in module.parameters()) for name, module in parts.items()}

    def num_parameters(self) -> int:
        return sum(self.parameter_groups().values())


