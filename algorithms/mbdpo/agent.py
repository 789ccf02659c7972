"""MBDPO: diffusion policy optimisation on the TD-MPC2 world model (shared/paper/METHOD.md).

The agent is TD-MPC2's (same world model, losses, policy prior and value targets, reused by inheritance) with
three additions: an implicit energy that regularises the planner's reward (eq. 9, 11), a diffusion planner
whose score is a Monte Carlo estimate over world-model rollouts (eq. 10, 12, 15), and optionally a score
network trained on those estimates (eq. 16) that amortises acting. Defaults follow the authors' released
code; every point where the paper's text differs is a config key (README, "MBDPO switches").
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from algorithms.common.buffer import Batch, ReplayBuffer
from algorithms.common.config import ConfigError
from algorithms.mbdpo.diffusion import ddpm_schedule, forward_noise
from algorithms.mbdpo.energy import CLASSIFIER_VARIANTS, ClassifierEnergy, InfoNCEEnergy, released_pairs
from algorithms.mbdpo.planner import DiffusionConfig, DiffusionPlan, diffusion_plan, mc_score_estimate
from algorithms.mbdpo.score_net import ScoreNetwork, score_matching_loss
from algorithms.tdmpc2.agent import Agent as TDMPC2Agent
from algorithms.tdmpc2.agent import Config as TDMPC2Config
from algorithms.tdmpc2.planner import estimate_value, policy_trajectories
from algorithms.world_model.compute import set_compute_path
from algorithms.world_model.diagnostics import behaviour_drift, search_prior_drift, td_errors
from algorithms.world_model.scale import RunningScale

CHOICES = {
    "energy": ("classifier", "infonce"), "classifier": CLASSIFIER_VARIANTS, "energy_pairing": ("released", "aligned"), "weighting": ("zscore-elites", "softmax"),
    "sampler": ("deterministic", "ddpm"), "beta_schedule": ("linear", "cosine"),
    "value_target": ("prior", "diffusion"), "score_points": ("noise", "buffer", "buffer+chain"),
    "score_training": ("joint", "separate"), "score_target": ("released", "planner"),
}


@dataclass
class Config(TDMPC2Config):
    """MBDPO hyper-parameters: TD-MPC2's (world model, losses, policy prior) plus the fields below.

    TD-MPC2's ``num_samples`` (N Monte Carlo candidates), ``num_elites``, ``num_pi_trajs`` and ``temperature``
    (τ) keep their meaning for the MC score; ``iterations``, ``min_std``, ``max_std`` and ``mpc`` are unused.
    """

    energy: str = "classifier"
    """``classifier`` (released: BCE F(z,a), reward r̂ + η·norm(F)) or ``infonce`` (paper eq. 9: r̂ − λE)."""
    eta: float = 0.01
    """Weight η of the classifier energy in the reward; 0 switches the energy off."""
    energy_lambda: float = 0.1
    """Weight λ of the InfoNCE energy in the reward; 0 switches the energy off."""
    classifier: str = "released"
    """How F is trained (FIDELITY.md D2): ``released`` (in the joint world-model loss on the detached rollout latents,
    zero last layer, EMA of mean/std from (0, 1)) or ``state-conditional`` (encoder latents with their own actions,
    own Adam after the policy step)."""
    energy_pairing: str = "released"
    """Positives of the ``released`` classifier: ``released`` (time-major latents against batch-major actions, as the
    released code: nearly state-independent) or ``aligned`` (each rollout latent with its own action)."""
    energy_clip: float = 5.0
    """Clip of the normalised classifier output."""
    energy_ema: float = 0.99
    """EMA rate of the classifier output's mean and std."""
    infonce_negatives: int = 64
    """Sub-batch size of the InfoNCE loss (its B x B pairs cost quadratically)."""
    diffusion_steps: int = 20
    """T: schedule length; the reverse process makes T - 1 updates."""
    beta_start: float = 1e-4
    """First β of the schedule."""
    beta_end: float = 1e-2
    """Last β of the linear schedule."""
    beta_schedule: str = "linear"
    """``linear`` (released) or ``cosine``."""
    weighting: str = "zscore-elites"
    """``zscore-elites`` (released: (R̃ − mean)/std/τ, softmax over the elites) or ``softmax`` (paper: R̃/(Sτ) over all)."""
    clip_candidates: bool = True
    """Clip candidates to the action box."""
    sampler: str = "deterministic"
    """``deterministic`` (released, warm-started) or ``ddpm`` (paper: from N(0, I), stochastic updates)."""
    warm_start: bool = True
    """Start the deterministic reverse process from the previous plan shifted by one step."""
    exploration_noise: float = 0.05
    """Std of Gaussian noise on the executed action in training."""
    use_score_network: bool = False
    """Train a score network on MC targets and act with it (paper's amortised reading; FIDELITY.md D9)."""
    score_warmup: int = 0
    """Updates before acting with the score network (released: 0, it acts from the first action)."""
    score_mc_samples: int = 64
    """MC candidates per score-network training target."""
    score_elites: int | None = None
    """Elites of the targets' z-scored softmax with ``score_target=planner``; None = all candidates."""
    score_pi_trajs: int = 0
    """Policy-prior rollouts among the targets' candidates (released: none)."""
    score_batch: int = 1
    """Training points per score-network update (the released code uses one state)."""
    score_t_dim: int = 64
    """Size of the sinusoidal step embedding."""
    score_points: str = "noise"
    """Training points A_t: ``noise`` (released: N(0, I) at a random t), ``buffer`` (forward-noised buffer
    sequences) or ``buffer+chain`` (half of them from states the reverse chain visited)."""
    score_encoder_grad: bool = True
    """Joint score training: the score loss backpropagates into the encoder through the latents (released,
    FIDELITY.md D13); false detaches them (the harness's earlier reading)."""
    score_target: str = "released"
    """MC target of the score network: ``released`` (z-scored with std + 1e-6 over every candidate, score denominator
    1 − ᾱ + 1e-8; FIDELITY.md D13) or ``planner`` (the planner's weighting, ``score_elites`` elites)."""
    score_training: str = "joint"
    """``joint`` (released: the score loss in the joint world-model loss, one Adam, one gradient clip) or ``separate``
    (its own Adam and clip after the world-model step)."""
    value_target: str = "prior"
    """Bootstrap action of the TD target: ``prior`` (released, TD-MPC2's) or ``diffusion`` (the acting policy; needs the score network)."""
    q_init: str = "torch-default"
    """Q-ensemble init: the released MBDPO code's escapes TD-MPC2's init (``torch-default``: hidden layers and output
    bias as nn.Linear initialises them; FIDELITY.md D10, D12); ``torch-default-hidden`` keeps the output bias at 0."""
    target_q_pair: str = "first"
    """Target Qs of the TD target: the released MBDPO code takes Q̄₀ and Q̄₁ (FIDELITY.md D7); ``random`` as TD-MPC2."""

    def validate(self) -> None:
        super().validate()
        for key, valid in CHOICES.items():
            if getattr(self, key) not in valid:
                raise ConfigError(f"config key 'agent.{key}' is {getattr(self, key)!r}; valid: {', '.join(valid)}")
        if self.diffusion_steps < 2:
            raise ConfigError(f"config key 'agent.diffusion_steps' must be at least 2, got {self.diffusion_steps}")
        if self.value_target == "diffusion" and not self.use_score_network:
            raise ConfigError("agent.value_target='diffusion' bootstraps from the amortised diffusion policy: "
                              "set agent.use_score_network=true too")
        if self.score_elites is not None and not 0 < self.score_elites <= self.score_mc_samples:
            raise ConfigError(f"config key 'agent.score_elites' must be in 1..score_mc_samples "
                              f"({self.score_mc_samples}) or null, got {self.score_elites}")
        if not 0 <= self.score_pi_trajs < self.score_mc_samples:
            raise ConfigError(f"config key 'agent.score_pi_trajs' must be in 0..score_mc_samples - 1, "
                              f"got {self.score_pi_trajs}")
        for key in ("eta", "energy_lambda", "exploration_noise", "score_warmup"):
            if getattr(self, key) < 0:
                raise ConfigError(f"config key 'agent.{key}' must be non-negative, got {getattr(self, key)}")

    def diffusion(self) -> DiffusionConfig:
        return DiffusionConfig(horizon=self.horizon, num_samples=self.num_samples, num_elites=self.num_elites,
                               num_pi_trajs=self.num_pi_trajs, temperature=self.temperature, weighting=self.weighting,
                               clip_candidates=self.clip_candidates, sampler=self.sampler,
                               warm_start=self.warm_start, exploration_noise=self.exploration_noise)


class Agent(TDMPC2Agent):
    """MBDPO on one task, or multi-task as TD-MPC2's agent; multi-task, the energy F and the score network take
    the task embedding concatenated to the latent, [z, e, a] and [z, e, A_t, emb(t)], as the released code."""

    def __init__(self, cfg: Config, spec, observation_space, action_space, device: torch.device,
                 num_tasks: int = 1, task_id: int = 0, action_dims: list[int] | None = None,
                 discounts: list[float] | None = None):
        super().__init__(cfg, spec, observation_space, action_space, device, num_tasks, task_id, action_dims,
                         discounts)
        wm = self.model.cfg
        action_dim = action_space.shape[0]
        self.schedule = ddpm_schedule(cfg.diffusion_steps, cfg.beta_start, cfg.beta_end, cfg.beta_schedule, device)
        self.diffusion_cfg = cfg.diffusion()
        conditioned = wm.latent_dim + self.model.task_dim  # [z, e]: the task embedding is 0-wide single-task
        if cfg.energy == "classifier":
            self.energy: torch.nn.Module = ClassifierEnergy(conditioned, action_dim, wm.mlp_dim, cfg.energy_ema,
                                                            cfg.energy_clip, cfg.classifier)
        else:
            self.energy = InfoNCEEnergy(conditioned, action_dim, wm.mlp_dim, cfg.infonce_negatives)
        self.energy.to(device)
        set_compute_path(self.energy, self.compute_path)
        self.energy_in_joint_loss = cfg.energy == "classifier" and cfg.classifier == "released"
        if self.energy_in_joint_loss:  # one optimiser and one gradient clip with the world model, as released
            self.optim.add_param_group({"params": list(self.energy.parameters())})
            self.joint_parameters += list(self.energy.parameters())
            self.energy_optim = None
        else:
            self.energy_optim = torch.optim.Adam(self.energy.parameters(), lr=cfg.lr)
        self.score_net = None
        self.score_optim = None
        if cfg.use_score_network:
            self.score_net = ScoreNetwork(wm.latent_dim + self.model.task_dim, cfg.horizon, action_dim, wm.mlp_dim,
                                          cfg.score_t_dim, released_init=cfg.score_training == "joint").to(device)
            set_compute_path(self.score_net, self.compute_path)
            if cfg.score_training == "joint":
                self.optim.add_param_group({"params": list(self.score_net.parameters())})
                self.joint_parameters += list(self.score_net.parameters())
            else:
                self.score_optim = torch.optim.Adam(self.score_net.parameters(), lr=cfg.lr)
        self.return_scale = RunningScale(cfg.tau).to(device)
        self.prev_plan: torch.Tensor | None = None
        self.chain_points: deque[tuple[torch.Tensor, torch.Tensor, int]] = deque(maxlen=256)

    # --- the energy-regularised reward (eq. 11) ------------------------------------------------------------------
    @property
    def energy_coef(self) -> float:
        return self.cfg.eta if self.cfg.energy == "classifier" else self.cfg.energy_lambda

    def shaped_reward(self, z: torch.Tensor, action: torch.Tensor, task: torch.Tensor | None = None) -> torch.Tensor:
        """eq. (11)'s r̃: r̂ + η·clip(norm F) (classifier) or r̂ − λE (InfoNCE)."""
        return (self.model.reward_value(z, action, task)
                + self.energy_coef * self.energy.shaping(self.model.task_emb_of(z, task), action))

    def reward_fn(self):
        """None (the plain model reward) when the energy weight is 0: the energy is then off exactly."""
        return self.shaped_reward if self.energy_coef > 0 else None

    # --- acting ---------------------------------------------------------------------------------------------------
    def reset(self) -> None:
        self.prev_plan = None

    @property
    def acts_with_score_network(self) -> bool:
        return self.score_net is not None and self.num_updates >= self.cfg.score_warmup

    def score_fn(self, a_t: torch.Tensor, t: torch.Tensor, z: torch.Tensor,
                 task: torch.Tensor | None = None) -> torch.Tensor:
        """s_θ(A_t, t, [z, e]): the task embedding is concatenated to the latent (multi-task), as released."""
        return self.score_net(a_t, t, self.model.task_emb_of(z, task)).float()

    def plan_diffusion(self, z: torch.Tensor, eval_mode: bool, prev_plan: torch.Tensor | None = None,
                       task: torch.Tensor | None = None, amortised: bool = False) -> DiffusionPlan:
        on_returns = None
        if self.cfg.weighting == "softmax" and not eval_mode:
            on_returns = self.return_scale.update
        return diffusion_plan(self.model, z, self.schedule, self.diffusion_cfg, self.planning_discount(task),
                              self.reward_fn(),
                              prev_plan=prev_plan, task=task, eval_mode=eval_mode,
                              score_fn=(lambda a_t, t, z_: self.score_fn(a_t, t, z_, task)) if amortised else None,
                              return_scale=self.return_scale.value, on_returns=on_returns)

    @torch.no_grad()
    def act(self, obs: np.ndarray, eval_mode: bool) -> np.ndarray:
        self.model.eval()
        with self.autocast():
            z = self.model.encode(self.obs_tensor(obs), self.task)
            plan = self.plan_diffusion(z, eval_mode, self.prev_plan, self.task, amortised=self.acts_with_score_network)
        self.prev_plan = plan.plan
        if self.score_net is not None and not eval_mode and self.cfg.score_points == "buffer+chain":
            for t, x in plan.chain:
                self.chain_points.append((z[0], x[0], t))
        return self.task_action(plan.action)

    # --- learning -------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def td_target(self, next_z: torch.Tensor, reward: torch.Tensor, terminated: torch.Tensor,
                  task: torch.Tensor | None) -> torch.Tensor:
        """TD-MPC2's target (prior), or with the bootstrap action from the amortised diffusion policy."""
        if self.cfg.value_target == "prior":
            return super().td_target(next_z, reward, terminated, task)
        flat = next_z.reshape(-1, next_z.shape[-1])
        flat_task = None if task is None else task.repeat(next_z.shape[0])  # rows of next_z (H, B) time-major
        plan = self.plan_diffusion(flat, eval_mode=True, task=flat_task, amortised=True)
        next_action = plan.action.view(*next_z.shape[:-1], -1)
        return reward + self.discount_of(task) * (1 - terminated) * self.target_q(next_z, next_action, task)

    def update(self, buffer: ReplayBuffer | Batch) -> dict[str, float]:
        """World model and policy prior (TD-MPC2's step), then the energy, then the score network. ``buffer``: a
        replay buffer to sample from, or a sampled :class:`Batch` (multi-task: with ``task``)."""
        obs, action, reward, terminated, task = self._batch(buffer)
        with self.autocast():
            metrics = self.update_world_model(obs, action, reward, terminated, task)
            separate_energy = self.energy_coef > 0 and not self.energy_in_joint_loss
            separate_score = self.score_net is not None and self.score_optim is not None
            if separate_energy or separate_score:  # the released defaults train both inside the joint loss
                with torch.no_grad():
                    z = self.model.encode(obs[0], task)
                if separate_energy:
                    metrics.update(self.update_energy(z, action[0], task))
                if separate_score:
                    metrics.update(self.update_score_network(z, action.transpose(0, 1), task))
            self.num_updates += 1
            if self.cfg.diag_every and self.num_updates % self.cfg.diag_every == 0:
                metrics.update(self.diagnostics(obs, action, reward, task))
        return metrics

    def joint_loss_terms(self, rollout: torch.Tensor, action: torch.Tensor,
                         task: torch.Tensor | None) -> tuple[torch.Tensor, dict[str, float]]:
        """The released code trains F and the score network inside the joint world-model loss (FIDELITY.md D2, D9)."""
        total, metrics = super().joint_loss_terms(rollout, action, task)
        if self.energy_in_joint_loss and self.energy_coef > 0:
            loss, energy_metrics = self.classifier_loss(rollout, action, task)
            total, metrics = total + loss, {**metrics, **energy_metrics}
        if self.score_net is not None and self.score_optim is None:
            # FIDELITY.md D13: the released score loss reaches the encoder through the latents it is given
            z = rollout[0] if self.cfg.score_encoder_grad else rollout[0].detach()
            loss = self.score_loss(z, action.transpose(0, 1), task)
            total, metrics = total + loss, {**metrics, "score_loss": loss.item()}
        return total, metrics

    def classifier_loss(self, rollout: torch.Tensor, action: torch.Tensor,
                        task: torch.Tensor | None) -> tuple[torch.Tensor, dict[str, float]]:
        """The released classifier's loss: F on the H·B detached rollout latents, negatives from the policy prior
        before this update's policy step (FIDELITY.md D2)."""
        rollout = rollout.detach()
        if self.cfg.energy_pairing == "released":
            z, positives = released_pairs(rollout, action)
            # multi-task, the released code's task ids go batch-major like its actions (each id H times in a row)
            task_rows = None if task is None else task.repeat_interleave(rollout.shape[0])
        else:
            z, positives = rollout.reshape(-1, rollout.shape[-1]), action.reshape(-1, action.shape[-1])
            task_rows = None if task is None else task.repeat(rollout.shape[0])
        with torch.no_grad():
            prior_action = self.model.pi(z, task_rows).action
        return self.energy.loss(self.model.task_emb_of(z, task_rows), positives, prior_action)

    def update_energy(self, z: torch.Tensor, action: torch.Tensor, task: torch.Tensor | None) -> dict[str, float]:
        """eq. (9) (InfoNCE) or the state-conditional classifier's BCE, on encoder latents and their actions."""
        with torch.no_grad():
            prior_action = self.model.pi(z, task).action
            z = self.model.task_emb_of(z, task)  # detached: only the energy's own Adam steps here
        loss, metrics = self.energy.loss(z, action, prior_action)
        self.energy_optim.zero_grad(set_to_none=True)
        loss.backward()
        self.energy_optim.step()
        self.energy_optim.zero_grad(set_to_none=True)  # no gradient outlives its update (resume bit for bit)
        return metrics

    def score_training_points(self, z: torch.Tensor, sequences: torch.Tensor, task: torch.Tensor | None):
        """(z, A_t, t, task) for the score network at random t: A_t ~ N(0, I) (``noise``, released), forward-noised
        buffer sequences (eq. 2, ``buffer``), and with ``buffer+chain`` half of the points replaced by states the
        reverse chain visited while acting."""
        n = min(self.cfg.score_batch, z.shape[0])
        t = torch.randint(1, self.schedule.steps, (n,), device=self.device)
        if self.cfg.score_points == "noise":
            a_t = torch.randn_like(sequences[:n])
        else:
            alpha_bar = self.schedule.alphas_bar[t].view(n, 1, 1)
            a_t = forward_noise(sequences[:n], alpha_bar, torch.randn_like(sequences[:n]))
        z, task = z[:n], None if task is None else task[:n]
        if task is not None and self.model.multitask:  # a task's padded action dims stay 0, as in planning
            a_t = a_t * self.model.action_masks[task.long()].unsqueeze(1)
        if self.cfg.score_points == "buffer+chain" and len(self.chain_points) > 0 and n > 1:
            k = n // 2
            picks = torch.randint(0, len(self.chain_points), (k,)).tolist()
            z = torch.cat([z[: n - k], torch.stack([self.chain_points[i][0] for i in picks])])
            a_t = torch.cat([a_t[: n - k], torch.stack([self.chain_points[i][1] for i in picks])])
            t = torch.cat([t[: n - k], torch.tensor([self.chain_points[i][2] for i in picks], device=self.device)])
        return z, a_t, t, task

    def mc_targets(self, z: torch.Tensor, a_t: torch.Tensor, t: torch.Tensor, samples: int,
                   task: torch.Tensor | None = None) -> torch.Tensor:
        """MC score ŝ(A_t, t, z) (eq. 10) for each point, as the regression target of eq. (16)."""
        released = self.cfg.score_target == "released"  # FIDELITY.md D13: std + 1e-6, 1 − ᾱ + 1e-8, every candidate
        cfg = DiffusionConfig(**{**self.diffusion_cfg.__dict__, "num_samples": samples,
                                 "num_elites": samples if released else (self.cfg.score_elites or samples),
                                 "num_pi_trajs": self.cfg.score_pi_trajs,
                                 **({"weighting": "zscore-target"} if released else {})})
        reward_fn = self.reward_fn()
        targets = []
        for i in range(z.shape[0]):  # each point has its own t, hence its own proposal
            zi = z[i: i + 1]
            ti = None if task is None else task[i: i + 1]
            task_b = None if ti is None else ti.reshape(1, 1)  # broadcasts over the candidates
            z_samples = zi.unsqueeze(1).expand(1, samples, -1)

            def returns_of(candidates, z_samples=z_samples, ti=ti, task_b=task_b):
                value = estimate_value(self.model, z_samples, candidates.permute(2, 0, 1, 3),
                                       self.planning_discount(ti), task_b, reward_fn)
                return value.squeeze(-1).nan_to_num(0)

            fixed = None
            if cfg.num_pi_trajs > 0:
                fixed = policy_trajectories(self.model, zi.unsqueeze(1).expand(1, cfg.num_pi_trajs, -1),
                                            cfg.horizon, task_b).permute(1, 2, 0, 3)
            alpha_bar = self.schedule.alphas_bar[t[i]]
            mask = self.model.action_masks[ti.long()] if ti is not None and self.model.multitask else None
            targets.append(mc_score_estimate(a_t[i: i + 1], alpha_bar, returns_of, cfg, fixed,
                                             self.return_scale.value, mask, 1e-8 if released else 0.0).score)
        return torch.cat(targets)

    def score_loss(self, z: torch.Tensor, sequences: torch.Tensor, task: torch.Tensor | None) -> torch.Tensor:
        """eq. (16): ‖s_θ(A_t, t, z) − ŝ(A_t, t, z)‖² on MC score targets."""
        z, a_t, t, task = self.score_training_points(z, sequences, task)
        with torch.no_grad():
            targets = self.mc_targets(z, a_t, t, self.cfg.score_mc_samples, task)
        return score_matching_loss(self.score_fn(a_t, t, z, task), targets)

    def update_score_network(self, z: torch.Tensor, sequences: torch.Tensor, task) -> dict[str, float]:
        """``score_training=separate``: eq. (16) with the score network's own Adam and gradient clip."""
        loss = self.score_loss(z, sequences, task)
        self.score_optim.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.score_net.parameters(), self.cfg.grad_clip_norm)
        self.score_optim.step()
        self.score_optim.zero_grad(set_to_none=True)  # no gradient outlives its update (resume bit for bit)
        return {"score_loss": loss.item()}

    @torch.no_grad()
    def diagnostics(self, obs: torch.Tensor, action: torch.Tensor, reward: torch.Tensor,
                    task: torch.Tensor | None) -> dict[str, float]:
        """On buffer states: the acting policy's drift from the replay's actions (``behaviour_drift``; the acting
        policy is the diffusion planner, or the score network once it acts), the MC-reweighted candidates of the
        last reverse step against π_θ (``search_prior_drift``; π_θ is the score-net sampler when it acts — a
        Gaussian of std ``exploration_noise`` around its action — else the policy prior), and TD / cross-TD error
        (bootstrap from the policy Q is trained with / from the acting policy)."""
        n = min(self.cfg.diag_batch, obs.shape[1])
        model = self.model
        model.eval()
        task_n = None if task is None else task[:n]
        z, next_z = model.encode(obs[0, :n], task_n), model.encode(obs[1, :n], task_n)
        amortised = self.acts_with_score_network
        acting = self.plan_diffusion(z, eval_mode=True, task=task_n, amortised=amortised)
        search = self.plan_diffusion(z, eval_mode=True, task=task_n) if amortised else acting
        if amortised:
            mu = torch.atanh(acting.action.clamp(-0.999, 0.999))
            log_std = torch.full_like(mu, float(np.log(max(self.cfg.exploration_noise, 1e-3))))
        else:
            prior = model.pi(z, task_n)
            mu, log_std = prior.mu, prior.log_std
        drift = search_prior_drift(search.search_mean, search.search_std, mu, log_std)
        next_acting = self.plan_diffusion(next_z, eval_mode=True, task=task_n, amortised=amortised).action
        if self.cfg.value_target == "prior":
            next_train = model.pi(next_z, task_n).action
        else:
            next_train = self.plan_diffusion(next_z, eval_mode=True, task=task_n, amortised=True).action
        errors = td_errors(model, z, action[0, :n], reward[0, :n], next_z, next_train, next_acting,
                           self.discount_of(task_n), task_n)
        model.train()
        return {**drift, **behaviour_drift(acting.action, action[0, :n]), **errors}

    # --- checkpoints ----------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state.update(energy=self.energy.state_dict(),
                     energy_optim=None if self.energy_optim is None else self.energy_optim.state_dict(),
                     return_scale=self.return_scale.state_dict(),
                     chain_points=[(z.cpu(), x.cpu(), t) for z, x, t in self.chain_points])
        if self.score_net is not None:
            state.update(score_net=self.score_net.state_dict(),
                         score_optim=None if self.score_optim is None else self.score_optim.state_dict())
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.energy.load_state_dict(state["energy"])
        if self.energy_optim is not None:
            self.energy_optim.load_state_dict(state["energy_optim"])
        self.return_scale.load_state_dict(state["return_scale"])
        self.chain_points.clear()
        self.chain_points.extend((z.to(self.device), x.to(self.device), t) for z, x, t in state["chain_points"])
        if self.score_net is not None:
            self.score_net.load_state_dict(state["score_net"])
            if self.score_optim is not None:
                self.score_optim.load_state_dict(state["score_optim"])

    def num_parameters(self) -> dict[str, int]:
        """Learnable parameters: world model, energy and score network (the paper's size names count all)."""
        counts = {"world_model": self.model.num_parameters(),
                  "energy": sum(p.numel() for p in self.energy.parameters())}
        if self.score_net is not None:
            counts["score_net"] = sum(p.numel() for p in self.score_net.parameters())
        return counts
