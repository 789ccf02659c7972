"""Soft actor-critic (Haarnoja et al., 2018, "Soft Actor-Critic Algorithms and Applications").

Twin Q-functions with Polyak-averaged targets, a tanh-squashed Gaussian actor, and automatic entropy tuning
towards a target entropy of -|A|. Defaults follow the common reference implementations (CleanRL, Stable
Baselines3): 256x256 MLPs, Adam 3e-4, tau 0.005, batch 256, initial temperature 1. The discount is the
task's (shared/paper/TASKS.md). Pixel observations go through a small conv encoder trained by the critic
loss only (the actor sees its features detached), as in SAC-AE.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from algorithms.common.agent import Agent as AgentBase
from algorithms.common.buffer import ReplayBuffer
from algorithms.common.config import ConfigError, check_ranges


@dataclass
class Config:
    """SAC hyper-parameters (``agent.<name>=value`` on the command line)."""

    hidden_dim: int = 256
    """Width of the actor and critic MLPs."""
    num_layers: int = 2
    """Hidden layers of the actor and critic MLPs."""
    lr: float = 3e-4
    """Adam learning rate of actor, critics and temperature."""
    batch_size: int = 256
    """Transitions per update."""
    tau: float = 0.005
    """Polyak rate of the target critics."""
    gamma: float | None = None
    """Discount; None = the task's (0.99 on DMControl)."""
    init_alpha: float = 1.0
    """Initial entropy temperature."""
    learn_alpha: bool = True
    """Tune the temperature towards ``target_entropy``."""
    target_entropy: float | None = None
    """Entropy target; None = -|A|."""
    log_std_min: float = -5.0
    """Lower bound of the actor's log standard deviation."""
    log_std_max: float = 2.0
    """Upper bound of the actor's log standard deviation."""
    actor_update_every: int = 1
    """Critic updates per actor (and temperature) update."""
    encoder_channels: int = 32
    """Conv channels of the pixel encoder (4 layers of 3x3)."""
    feature_dim: int = 50
    """Output size of the pixel encoder."""

    def validate(self) -> None:
        for key in ("hidden_dim", "num_layers", "batch_size", "actor_update_every", "encoder_channels",
                    "feature_dim"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"config key 'agent.{key}' must be positive, got {getattr(self, key)}")
        check_ranges(self, positive=("lr",))
        if not 0 < self.tau <= 1:
            raise ConfigError(f"config key 'agent.tau' must lie in (0, 1], got {self.tau}")
        if self.gamma is not None and not 0 <= self.gamma < 1:
            raise ConfigError(f"config key 'agent.gamma' must lie in [0, 1), got {self.gamma}")


def mlp(in_dim: int, hidden_dim: int, num_layers: int, out_dim: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(num_layers):
        layers += [nn.Linear(in_dim if i == 0 else hidden_dim, hidden_dim), nn.ReLU()]
    layers.append(nn.Linear(hidden_dim, out_dim))
    return nn.Sequential(*layers)


class PixelEncoder(nn.Module):
    """Four 3x3 convolutions (the first with stride 2), then a linear layer, LayerNorm and tanh."""

    def __init__(self, obs_shape: tuple[int, ...], channels: int, feature_dim: int):
        super().__init__()
        self.convs = nn.Sequential(
            nn.Conv2d(obs_shape[0], channels, 3, stride=2), nn.ReLU(),
            nn.Conv2d(channels, channels, 3), nn.ReLU(),
            nn.Conv2d(channels, channels, 3), nn.ReLU(),
            nn.Conv2d(channels, channels, 3), nn.ReLU(), nn.Flatten())
        with torch.no_grad():
            flat = self.convs(torch.zeros(1, *obs_shape)).shape[1]
        self.head = nn.Sequential(nn.Linear(flat, feature_dim), nn.LayerNorm(feature_dim), nn.Tanh())
        self.feature_dim = feature_dim

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.head(self.convs(obs.float() / 255.0 - 0.5))


class Actor(nn.Module):
    def __init__(self, in_dim: int, action_dim: int, cfg: Config):
        super().__init__()
        self.net = mlp(in_dim, cfg.hidden_dim, cfg.num_layers, 2 * action_dim)
        self.log_std_min, self.log_std_max = cfg.log_std_min, cfg.log_std_max

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A reparameterised squashed sample, its log-probability, and the deterministic action tanh(mu)."""
        mu, log_std = self.net(features).chunk(2, dim=-1)
        log_std = self.log_std_min + 0.5 * (self.log_std_max - self.log_std_min) * (torch.tanh(log_std) + 1)
        normal = torch.distributions.Normal(mu, log_std.exp())
        pre_tanh = normal.rsample()
        action = torch.tanh(pre_tanh)
        # log det of the tanh Jacobian, in the numerically stable form 2(log 2 - u - softplus(-2u)).
        log_prob = normal.log_prob(pre_tanh) - 2 * (np.log(2) - pre_tanh - F.softplus(-2 * pre_tanh))
        return action, log_prob.sum(-1), torch.tanh(mu)


class TwinQ(nn.Module):
    def __init__(self, in_dim: int, action_dim: int, cfg: Config):
        super().__init__()
        self.q1 = mlp(in_dim + action_dim, cfg.hidden_dim, cfg.num_layers, 1)
        self.q2 = mlp(in_dim + action_dim, cfg.hidden_dim, cfg.num_layers, 1)

    def forward(self, features: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat([features, action], dim=-1)
        return self.q1(x).squeeze(-1), self.q2(x).squeeze(-1)


class Agent(AgentBase):
    horizon = 1

    def __init__(self, cfg: Config, spec, observation_space, action_space, device: torch.device):
        super().__init__(cfg, spec, observation_space, action_space, device)
        action_dim = action_space.shape[0]
        self.gamma = cfg.gamma if cfg.gamma is not None else spec.discount
        self.target_entropy = cfg.target_entropy if cfg.target_entropy is not None else -float(action_dim)
        self.pixels = len(observation_space.shape) == 3
        if self.pixels:
            self.encoder: nn.Module = PixelEncoder(observation_space.shape, cfg.encoder_channels, cfg.feature_dim)
            features = cfg.feature_dim
        else:
            self.encoder = nn.Identity()
            features = observation_space.shape[0]
        self.encoder.to(device)
        self.actor = Actor(features, action_dim, cfg).to(device)
        self.critic = TwinQ(features, action_dim, cfg).to(device)
        self.encoder_target = copy.deepcopy(self.encoder).requires_grad_(False)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = torch.tensor(np.log(cfg.init_alpha), device=device, requires_grad=True)
        self.actor_optim = torch.optim.Adam(self.actor.parameters(), lr=cfg.lr)
        self.critic_optim = torch.optim.Adam([*self.critic.parameters(), *self.encoder.parameters()], lr=cfg.lr)
        self.alpha_optim = torch.optim.Adam([self.log_alpha], lr=cfg.lr)
        self.num_updates = 0

    @property
    def alpha(self) -> torch.Tensor:
        return self.log_alpha.exp()

    @torch.no_grad()
    def act(self, obs: np.ndarray, eval_mode: bool) -> np.ndarray:
        obs_t = torch.as_tensor(obs, device=self.device).unsqueeze(0)
        sample, _, mean = self.actor(self.encoder(obs_t))
        return (mean if eval_mode else sample)[0].cpu().numpy().astype(np.float32)

    def update(self, buffer: ReplayBuffer) -> dict[str, float]:
        """One SAC update: critic TD step, then (every ``actor_update_every``) actor and temperature steps."""
        cfg = self.cfg
        batch = buffer.sample(cfg.batch_size, horizon=1)
        obs = torch.as_tensor(batch.obs[:, 0], device=self.device)
        next_obs = torch.as_tensor(batch.obs[:, 1], device=self.device)
        action = torch.as_tensor(batch.action[:, 0], device=self.device)
        reward = torch.as_tensor(batch.reward[:, 0], device=self.device)
        not_done = 1.0 - torch.as_tensor(batch.terminated[:, 0], device=self.device, dtype=torch.float32)

        with torch.no_grad():
            next_features = self.encoder_target(next_obs) if self.pixels else next_obs
            next_action, next_log_prob, _ = self.actor(next_features)
            target_q = torch.min(*self.critic_target(next_features, next_action))
            td_target = reward + not_done * self.gamma * (target_q - self.alpha * next_log_prob)
        features = self.encoder(obs)
        q1, q2 = self.critic(features, action)
        critic_loss = F.mse_loss(q1, td_target) + F.mse_loss(q2, td_target)
        self.critic_optim.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_optim.step()
        metrics = {"critic_loss": critic_loss.item(), "q_mean": q1.mean().item()}

        if self.num_updates % cfg.actor_update_every == 0:
            detached = features.detach()
            new_action, log_prob, _ = self.actor(detached)
            q_new = torch.min(*self.critic(detached, new_action))
            actor_loss = (self.alpha.detach() * log_prob - q_new).mean()
            self.actor_optim.zero_grad(set_to_none=True)
            actor_loss.backward()
            self.actor_optim.step()
            metrics.update(actor_loss=actor_loss.item(), entropy=-log_prob.mean().item())
            if cfg.learn_alpha:
                alpha_loss = -(self.log_alpha * (log_prob.detach() + self.target_entropy)).mean()
                self.alpha_optim.zero_grad(set_to_none=True)
                alpha_loss.backward()
                self.alpha_optim.step()
                metrics["alpha_loss"] = alpha_loss.item()
        metrics["alpha"] = self.alpha.item()

        with torch.no_grad():
            for net, target in ((self.critic, self.critic_target), (self.encoder, self.encoder_target)):
                for p, p_target in zip(net.parameters(), target.parameters()):
                    p_target.lerp_(p, cfg.tau)
        self.num_updates += 1
        return metrics

    def state_dict(self) -> dict[str, Any]:
        return {
            "encoder": self.encoder.state_dict(), "encoder_target": self.encoder_target.state_dict(),
            "actor": self.actor.state_dict(), "critic": self.critic.state_dict(),
            "critic_target": self.critic_target.state_dict(), "log_alpha": self.log_alpha.detach().clone(),
            "actor_optim": self.actor_optim.state_dict(), "critic_optim": self.critic_optim.state_dict(),
            "alpha_optim": self.alpha_optim.state_dict(), "num_updates": self.num_updates,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name in ("encoder", "encoder_target", "actor", "critic", "critic_target"):
            getattr(self, name).load_state_dict(state[name])
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        for name in ("actor_optim", "critic_optim", "alpha_optim"):
            getattr(self, name).load_state_dict(state[name])
        self.num_updates = state["num_updates"]
