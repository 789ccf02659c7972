"""DreamerV3 in PyTorch on the harness's run life cycle (Hafner et al. 2023; official settings from
shared/paper/DREAMERV3.md). World model (sec. 2): block-GRU RSSM, 32 categorical latents with 1 % unimix and
straight-through samples, symlog inputs, two-hot reward, continue head, KL balancing with free bits. Actor-critic
in imagination (sec. 3): horizon 15, λ-returns, percentile return normalisation, REINFORCE with entropy 3e-4, a
two-hot critic regularised towards its slow EMA, and the replay value loss. One LaProp optimiser with per-tensor
AGC and warm-up (§4).

Defaults are the settings behind the shipped DMC scores (size12m, train ratio 512, action repeat 2 as in the
registry); ``preset=official-proprio`` selects today's official proprio settings (size1m, train ratio 1024).
Departures, all documented: each replayed window starts from a zero state (no replay context / stored latents),
windows do not cross episode boundaries (the harness's buffer), float32 compute.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from algorithms.common.agent import Agent as AgentBase
from algorithms.common.buffer import ReplayBuffer
from algorithms.common.config import ConfigError, check_ranges
from algorithms.dreamerv3 import math as dm
from algorithms.dreamerv3.behaviour import actor_critic_losses, imagine
from algorithms.dreamerv3.networks import (RSSM, Actor, ConvDecoder, ConvEncoder, Linear, TwoHotHead,
                                           VectorDecoder, VectorEncoder, mlp)
from algorithms.dreamerv3.optim import LaProp

# §1: deter / hidden / classes, units, CNN depth
SIZES = {
    "size1m": (512, 64, 4, 64, 4), "size12m": (2048, 256, 16, 256, 16), "size25m": (3072, 384, 24, 384, 24),
    "size50m": (4096, 512, 32, 512, 32), "size100m": (6144, 768, 48, 768, 48),
    "size200m": (8192, 1024, 64, 1024, 64), "size400m": (12288, 1536, 96, 1536, 96),
}
PRESETS = {
    "shipped": {"size": "size12m", "train_ratio": 512.0},  # the commit behind the shipped DMC scores (2411f7d)
    "official-proprio": {"size": "size1m", "train_ratio": 1024.0},  # HEAD e3f0224 dmc_proprio
    "official-vision": {"size": "size200m", "train_ratio": 256.0},  # HEAD e3f0224 dmc_vision
}


@dataclass
class Config:
    """DreamerV3 hyper-parameters (``agent.<name>=value``)."""

    preset: str = "shipped"
    """``shipped`` (size12m, ratio 512), ``official-proprio`` (size1m, 1024) or ``official-vision`` (size200m,
    256); ``size`` and ``train_ratio`` below override it when set."""
    size: str | None = None
    """Size preset size1m … size400m (deter/hidden/classes, units, CNN depth of §1)."""
    train_ratio: float | None = None
    """Replayed steps per agent step: updates per agent step = train_ratio / (batch_size · batch_length)."""
    stoch: int = 32
    """Categorical latents."""
    blocks: int = 8
    """Block-GRU blocks."""
    unimix: float = 0.01
    batch_size: int = 16
    batch_length: int = 64
    imag_horizon: int = 15
    horizon: float = 333.0
    """γ = 1 − 1/horizon."""
    lam: float = 0.95
    free_bits: float = 1.0
    loss_dyn: float = 1.0
    loss_rep: float = 0.1
    loss_rec: float = 1.0
    loss_rew: float = 1.0
    loss_con: float = 1.0
    loss_policy: float = 1.0
    loss_value: float = 1.0
    loss_repval: float = 0.3
    entropy: float = 3e-4
    slow_rate: float = 0.02
    """EMA rate of the slow critic, every update."""
    retnorm_rate: float = 0.01
    lr: float = 4e-5
    agc: float = 0.3
    eps: float = 1e-20
    warmup: int = 1000
    min_std: float = 0.1
    max_std: float = 1.0
    units: int | None = None
    """Override the preset's MLP width."""
    deter: int | None = None
    """Override the preset's recurrent state size (a multiple of ``blocks``)."""
    hidden: int | None = None
    """Override the preset's RSSM hidden width."""
    classes: int | None = None
    """Override the preset's classes per latent."""
    depth: int | None = None
    """Override the preset's CNN depth."""

    def resolved(self) -> tuple[str, float]:
        if self.preset not in PRESETS:
            raise ConfigError(f"config key 'agent.preset' is {self.preset!r}; valid: {', '.join(PRESETS)}")
        size = self.size or PRESETS[self.preset]["size"]
        if size not in SIZES:
            raise ConfigError(f"config key 'agent.size' is {size!r}; valid: {', '.join(SIZES)}")
        return size, float(self.train_ratio or PRESETS[self.preset]["train_ratio"])

    def validate(self) -> None:
        self.resolved()
        check_ranges(self, positive=("lr", "horizon", "min_std", "max_std"), fraction=("unimix",),
                     rate=("slow_rate", "retnorm_rate", "lam"))
        for key in ("batch_size", "batch_length", "imag_horizon", "stoch", "blocks"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"config key 'agent.{key}' must be positive, got {getattr(self, key)}")
        if self.resolved()[1] <= 0:
            raise ConfigError("config key 'agent.train_ratio' must be positive")


class Agent(AgentBase):
    def __init__(self, cfg: Config, spec, observation_space, action_space, device: torch.device):
        super().__init__(cfg, spec, observation_space, action_space, device)
        cfg.validate()
        size, self.train_ratio = cfg.resolved()
        deter, hidden, classes, units, depth = SIZES[size]
        deter, hidden, classes = cfg.deter or deter, cfg.hidden or hidden, cfg.classes or classes
        units, depth = cfg.units or units, cfg.depth or depth
        if deter % cfg.blocks:
            raise ConfigError(f"agent.deter ({deter}) must be a multiple of agent.blocks ({cfg.blocks})")
        self.horizon = cfg.batch_length  # the buffer's sub-trajectory length
        self.pixels = len(observation_space.shape) == 3
        obs_shape = tuple(observation_space.shape)
        action_dim = action_space.shape[0]
        if self.pixels:
            self.encoder = ConvEncoder(obs_shape, depth).to(device)
        else:
            self.encoder = VectorEncoder(obs_shape[0], units).to(device)
        self.rssm = RSSM(action_dim, self.encoder.out_dim, deter, hidden, cfg.stoch, classes, cfg.blocks,
                         cfg.unimix).to(device)
        feat = self.rssm.feat_dim
        self.decoder = (ConvDecoder(feat, obs_shape, depth) if self.pixels
                        else VectorDecoder(feat, obs_shape[0], units)).to(device)
        bins = dm.twohot_bins().to(device)
        self.reward = TwoHotHead(feat, units, 1, bins).to(device)
        self.cont = torch.nn.Sequential(mlp(feat, units, 1), Linear(units, 1)).to(device)  # Bernoulli logits
        self.actor = Actor(feat, action_dim, units, 3, cfg.min_std, cfg.max_std).to(device)
        self.critic = TwoHotHead(feat, units, 3, bins).to(device)
        self.slow_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.modules_ = torch.nn.ModuleDict({"encoder": self.encoder, "rssm": self.rssm, "decoder": self.decoder,
                                             "reward": self.reward, "cont": self.cont, "actor": self.actor,
                                             "critic": self.critic})
        self.optim = LaProp(self.modules_.parameters(), lr=cfg.lr, eps=cfg.eps, agc=cfg.agc, warmup=cfg.warmup)
        self.retnorm = dm.ReturnNormalizer(rate=cfg.retnorm_rate)
        self.gamma = 1.0 - 1.0 / cfg.horizon
        self.update_credit = 0.0
        self.num_updates = 0
        self._act_state: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    # ---------------------------------------------------------------------------------------------- acting
    def reset(self) -> None:
        self._act_state = None

    @torch.no_grad()
    def act(self, obs: np.ndarray, eval_mode: bool) -> np.ndarray:
        if self._act_state is None:
            h, z = self.rssm.initial(1, self.device)
            self._act_state = (h, z, torch.zeros(1, self.action_space.shape[0], device=self.device))
        h, z, prev_action = self._act_state
        obs_t = torch.as_tensor(np.asarray(obs), device=self.device).unsqueeze(0)
        h = self.rssm.img_step(h, z, prev_action)
        probs = self.rssm.posterior(h, self.encoder(obs_t.float() if not self.pixels else obs_t))
        if eval_mode:
            z = F.one_hot(probs.argmax(-1), probs.shape[-1]).float()
        else:
            z = dm.sample_onehot_st(probs)
        dist = self.actor(self.rssm.features(h, z))
        action = (dist.mean if eval_mode else dist.sample()).clamp(-1.0, 1.0)
        self._act_state = (h, z, action)
        return action.squeeze(0).cpu().numpy().astype(np.float32)

    # ---------------------------------------------------------------------------------------------- learning
    def update(self, buffer: ReplayBuffer) -> dict[str, float]:
        """Called once per agent step: runs train_ratio / (B · T) updates on average (credit carried over)."""
        if not buffer.can_sample(self.cfg.batch_length):
            return {}
        self.update_credit += self.train_ratio / (self.cfg.batch_size * self.cfg.batch_length)
        metrics: dict[str, float] = {}
        while self.update_credit >= 1.0:
            self.update_credit -= 1.0
            metrics = self.train_step(buffer)
        return metrics

    def observe(self, obs: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Filter a replayed window (B, T+1): posterior states from a zero state, step 0 with a zero action."""
        batch, steps = obs.shape[:2]
        tokens = self.encoder(obs if self.pixels else obs.float())
        h, z = self.rssm.initial(batch, self.device)
        prev = torch.cat([torch.zeros_like(actions[:, :1]), actions], 1)
        hs, zs, posts = [], [], []
        for t in range(steps):
            h = self.rssm.img_step(h, z, prev[:, t])
            post = self.rssm.posterior(h, tokens[:, t])
            z = dm.sample_onehot_st(post)
            hs.append(h)
            zs.append(z)
            posts.append(post)
        hs = torch.stack(hs, 1)
        return hs, torch.stack(zs, 1), torch.stack(posts, 1), self.rssm.prior(hs)  # priors in one batched call

    def train_step(self, buffer: ReplayBuffer) -> dict[str, float]:
        cfg = self.cfg
        batch = buffer.sample(cfg.batch_size, horizon=cfg.batch_length)
        obs = torch.as_tensor(batch.obs, device=self.device)
        actions = torch.as_tensor(batch.action, device=self.device, dtype=torch.float32)
        rewards = torch.as_tensor(batch.reward, device=self.device, dtype=torch.float32)
        terminal = torch.as_tensor(batch.terminated, device=self.device, dtype=torch.float32)

        # ---- world model (sec. 2): reconstruction, reward and continue at steps 1..T, KL at every step
        h, z, post, prior = self.observe(obs, actions)
        feat = self.rssm.features(h, z)
        rec = self.decoder.loss(feat, obs).mean()
        rew = self.reward.loss(feat[:, 1:], rewards).mean()
        cont_target = (1.0 - terminal) * self.gamma  # §2: target (1 − terminal)(1 − 1/horizon)
        con = F.binary_cross_entropy_with_logits(self.cont(feat[:, 1:]).squeeze(-1), cont_target)
        dyn, rep = dm.kl_losses(post, prior, cfg.free_bits)
        model_loss = (cfg.loss_rec * rec + cfg.loss_rew * rew + cfg.loss_con * con + cfg.loss_dyn * dyn.mean()
                      + cfg.loss_rep * rep.mean())

        # ---- imagination (sec. 3) from every posterior state, gradients stopped at the starts
        n = h.shape[0] * h.shape[1]
        start_h, start_z = h.reshape(n, -1).detach(), z.reshape(n, *z.shape[2:]).detach()
        feats, imag_actions = imagine(self.rssm, self.actor, start_h, start_z, cfg.imag_horizon)
        with torch.no_grad():
            feats = feats.detach()
            imag_reward = self.reward.mean(feats[1:])
            imag_cont = torch.sigmoid(self.cont(feats).squeeze(-1))
            imag_cont[0] = torch.cat([torch.ones_like(cont_target[:, :1]), cont_target], 1).reshape(n)
        behaviour = actor_critic_losses(self.actor, self.critic, self.slow_critic, self.retnorm, feats, imag_actions,
                                        imag_reward, imag_cont, cfg.lam, cfg.entropy)
        returns = behaviour.returns

        # ---- replay value loss: the critic on replay features (gradients into the model), λ-returns from real
        # rewards and continues, bootstrapped at each step from that state's imagined R_0
        with torch.no_grad():
            boot = returns[0].reshape(h.shape[0], h.shape[1])
            replay_ret = dm.lambda_returns(rewards.T, boot.T, cont_target.T, cfg.lam).T  # (B, T)
        repval = self.critic.loss(feat[:, :-1], replay_ret).mean()

        loss = (model_loss + cfg.loss_policy * behaviour.policy + cfg.loss_value * behaviour.value
                + cfg.loss_repval * repval)
        self.optim.zero_grad(set_to_none=True)
        loss.backward()
        self.optim.step()
        with torch.no_grad():
            for slow, fast in zip(self.slow_critic.parameters(), self.critic.parameters()):
                slow.lerp_(fast, cfg.slow_rate)
        self.num_updates += 1
        return {"model_loss": model_loss.item(), "rec_loss": rec.item(), "reward_loss": rew.item(),
                "cont_loss": con.item(), "dyn_loss": dyn.mean().item(), "rep_loss": rep.mean().item(),
                "policy_loss": behaviour.policy.item(), "value_loss": behaviour.value.item(),
                "repval_loss": repval.item(), "policy_entropy": behaviour.entropy.mean().item(),
                "return_scale": float(behaviour.scale),
                "imag_return": returns.mean().item()}

    # ---------------------------------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        return {"modules": self.modules_.state_dict(), "slow_critic": self.slow_critic.state_dict(),
                "optim": self.optim.state_dict(), "retnorm": self.retnorm.state_dict(),
                "update_credit": self.update_credit, "num_updates": self.num_updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.modules_.load_state_dict(state["modules"])
        self.slow_critic.load_state_dict(state["slow_critic"])
        self.optim.load_state_dict(state["optim"])
        self.retnorm.load_state_dict(state["retnorm"])
        self.update_credit = state["update_credit"]
        self.num_updates = state["num_updates"]
