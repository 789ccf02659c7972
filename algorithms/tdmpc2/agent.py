"""TD-MPC2 (Hansen, Su and Wang, 2024, "TD-MPC2: Scalable, Robust World Models for Continuous Control").

A latent world model trained jointly on consistency, reward and value losses over a short horizon, a
policy prior trained to maximise Q plus entropy, and MPPI planning with the model at every env step.
Defaults are TD-MPC2's; the world model is the shared one in ``algorithms/world_model`` (MBDPO uses it too).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Callable, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from algorithms.common.agent import Agent as AgentBase
from algorithms.common.buffer import Batch, ReplayBuffer
from algorithms.common.config import ConfigError, check_ranges
from algorithms.tdmpc2.planner import MPPIConfig, Plan, mppi_plan
from algorithms.world_model import WorldModel, resolve
from algorithms.world_model.compute import (COMPUTE_PATHS, PRECISIONS, autocast, resolve_compute, resolve_precision,
                                            set_compute_path)
from algorithms.world_model.diagnostics import behaviour_drift, search_prior_drift, td_errors
from algorithms.world_model.layers import EnsembleLinear
from algorithms.world_model.presets import PRESETS, default_task_dim
from algorithms.world_model.scale import RunningScale


TARGET_Q_PAIRS = ("random", "first")


@dataclass
class Config:
    """TD-MPC2 hyper-parameters (``agent.<name>=value``); world-model sizes come from ``model_size``."""

    KEYS_ADDED_LATER: ClassVar[dict[str, str]] = {"precision": "fp32", "compute": "reference"}
    """Keys added after runs were made, with the value that computed those runs: a config from before issue 17
    compares (resume, ``evaluate``) as if it held them."""

    model_size: str = "6M"
    """Size preset: 1.7M, 6M, 21M, 54M or 340M (MBDPO's names for TD-MPC2's 1/5/19/48/317M models)."""
    enc_dim: int | None = None
    """Override the preset's encoder width."""
    mlp_dim: int | None = None
    """Override the preset's MLP width."""
    latent_dim: int | None = None
    """Override the preset's latent size (a multiple of simnorm_dim)."""
    num_enc_layers: int | None = None
    """Override the preset's encoder depth."""
    num_q: int | None = None
    """Override the preset's Q-ensemble size."""
    task_dim: int | None = None
    """Task-embedding size (multi-task only); None = the released configs' 64 up to 30 tasks (mt30), 96 above (mt80)."""
    num_bins: int = 101
    """Two-hot bins of reward and value."""
    vmin: float = -10.0
    """Lowest bin (symlog space)."""
    vmax: float = 10.0
    """Highest bin (symlog space)."""
    simnorm_dim: int = 8
    """SimNorm group size."""
    dropout: float = 0.01
    """Dropout in the first layer of each Q-function (online Qs in training only; target Qs never drop out)."""
    q_init: str = "trunc-normal"
    """Q-ensemble init: ``trunc-normal`` (std 0.02, official TD-MPC2), ``torch-default`` (nn.Linear's, output bias
    included) or ``torch-default-hidden`` (hidden layers only)."""
    target_q_pair: str = "random"
    """Target Qs of the TD target: ``random`` (two random members, official TD-MPC2) or ``first`` (Q̄₀, Q̄₁)."""
    replay_open_episode: bool = False
    """Sample the episode in progress (False: an episode enters the replay when it ends, as released)."""
    termination: bool = False
    """Learn a termination head (episodic tasks)."""
    augment: str = "encoder"
    """Pixel augmentation (FIDELITY.md D5): ``encoder`` shifts every encode, acting and evaluation included,
    as the released TD-MPC2 encoder does; ``batch`` shifts only the training batches (the harness's earlier
    behaviour, with ``shift_pad=4``)."""
    shift_pad: int = 3
    """Largest random shift of pixel observations, in pixels (released: 3)."""
    lr: float = 3e-4
    """Adam learning rate."""
    enc_lr_scale: float = 0.3
    """Encoder learning rate relative to lr."""
    grad_clip_norm: float = 20.0
    """Gradient-norm clip of the world-model update."""
    batch_size: int = 256
    """Sub-trajectories per update."""
    horizon: int = 3
    """Model rollout length in the loss and in planning."""
    rho: float = 0.5
    """Per-step weight decay of the losses over the horizon."""
    consistency_coef: float = 20.0
    """Weight of the latent consistency loss."""
    reward_coef: float = 0.1
    """Weight of the reward loss."""
    value_coef: float = 0.1
    """Weight of the value loss."""
    termination_coef: float = 1.0
    """Weight of the termination loss."""
    entropy_coef: float = 1e-4
    """Entropy bonus of the policy prior."""
    tau: float = 0.01
    """EMA rate of the target Qs and of the policy loss scale."""
    discount: float | None = None
    """Discount; None = the task's."""
    mpc: bool = True
    """Act by MPPI planning (otherwise by the policy prior)."""
    iterations: int = 6
    """MPPI iterations (``large_action_iterations`` more for action dimensions >= 20)."""
    large_action_iterations: int = 2
    """Extra MPPI iterations when the action dimension is >= 20 (dog, humanoid, MyoSuite hand), as official TD-MPC2."""
    num_samples: int = 512
    """MPPI action sequences per iteration."""
    num_elites: int = 64
    """MPPI elites."""
    num_pi_trajs: int = 24
    """Policy-prior trajectories among the samples."""
    min_std: float = 0.05
    """Lowest MPPI standard deviation."""
    max_std: float = 2.0
    """Initial (highest) MPPI standard deviation."""
    temperature: float = 0.5
    """MPPI score temperature (multiplies the elite values)."""
    pretrain_updates: int | None = None
    """Updates once seeding ends; None = as many as seed steps (TD-MPC2)."""
    diag_every: int = 1000
    """Updates between diagnostics (policy drift, cross-TD error); 0 turns them off."""
    diag_batch: int = 8
    """Buffer states the diagnostics plan from (each costs two MPPI plans)."""
    precision: str = "auto"
    """``fp32``, ``bf16`` (world-model forward passes under bf16 autocast; decoding, returns, scales and optimiser
    state in fp32), ``tf32`` (CUDA: fp32 with TF32 matmuls, as the released trainers ran; FIDELITY.md D14) or
    ``auto``: tf32 on CUDA, bf16 on a CPU with native bf16 units, fp32 elsewhere (``world_model/compute.py``)."""
    compute: str = "auto"
    """``fast`` (only the Q members a value uses, transposed SimNorm softmax), ``compiled`` (``fast`` with LayerNorm +
    Mish fused by torch.compile), ``reference`` (the compute path of the released code and of the harness before
    issue 17) or ``auto``: ``compiled`` on a CPU where torch.compile works, else ``fast`` (``world_model/compute.py``)."""

    def validate(self) -> None:
        if self.model_size not in PRESETS:
            raise ConfigError(f"config key 'agent.model_size' is {self.model_size!r}; valid: {', '.join(PRESETS)}")
        check_ranges(self, positive=("lr", "enc_lr_scale", "grad_clip_norm", "temperature", "min_std", "max_std"),
                     non_negative=("consistency_coef", "reward_coef", "value_coef", "termination_coef",
                                   "entropy_coef"),
                     fraction=("dropout",), rate=("tau", "rho", "discount"))
        for key in ("batch_size", "horizon", "iterations", "num_samples", "num_elites"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"config key 'agent.{key}' must be positive, got {getattr(self, key)}")
        if self.num_elites > self.num_samples or self.num_pi_trajs >= self.num_samples:
            raise ConfigError(f"need num_pi_trajs ({self.num_pi_trajs}) < num_samples ({self.num_samples}) "
                              f"and num_elites ({self.num_elites}) <= num_samples")
        for key, valid in (("precision", PRECISIONS), ("compute", COMPUTE_PATHS)):
            if getattr(self, key) not in valid:
                raise ConfigError(f"config key 'agent.{key}' is {getattr(self, key)!r}; valid: {', '.join(valid)}")
        if self.target_q_pair not in TARGET_Q_PAIRS:
            raise ConfigError(f"config key 'agent.target_q_pair' is {self.target_q_pair!r}; "
                              f"valid: {', '.join(TARGET_Q_PAIRS)}")
        if self.large_action_iterations < 0:
            raise ConfigError(f"config key 'agent.large_action_iterations' must be non-negative, "
                              f"got {self.large_action_iterations}")
        resolve(self.model_size, **self.model_overrides())

    def model_overrides(self) -> dict[str, Any]:
        names = {f.name for f in fields(Config)}
        keys = ("enc_dim", "mlp_dim", "latent_dim", "num_enc_layers", "num_q", "task_dim", "num_bins", "vmin",
                "vmax", "simnorm_dim", "dropout", "tau", "termination", "q_init", "augment", "shift_pad")
        return {k: getattr(self, k) for k in keys if k in names}

    def planning_iterations(self, action_dim: int) -> int:
        """MPPI iterations for an action space: official TD-MPC2 adds 2 from 20 action dimensions (FIDELITY.md D4)."""
        return self.iterations + (self.large_action_iterations if action_dim >= 20 else 0)

    def mppi(self, action_dim: int) -> MPPIConfig:
        return MPPIConfig(horizon=self.horizon, iterations=self.planning_iterations(action_dim),
                          num_samples=self.num_samples,
                          num_elites=self.num_elites, num_pi_trajs=self.num_pi_trajs, min_std=self.min_std,
                          max_std=self.max_std, temperature=self.temperature)


class Agent(AgentBase):
    """TD-MPC2 on one task, or multi-task (``num_tasks`` > 1) as the released code: a task embedding concatenated
    to every head's input, observations zero-padded to ``observation_space`` (the largest task's), actions of
    ``action_space`` (the largest) masked to each task's ``action_dims``, and one discount per task
    (``discounts``: the released heuristic from each task's episode length, ``TaskSpec.discount``).
    ``task_id`` (or :meth:`set_task`) selects the task ``act`` plays: it pads that task's observation and
    returns an action of that task's size. Updates take each row's task from the batch (``Batch.task``)."""

    @classmethod
    def resolve_machine_defaults(cls, cfg: Config, device: torch.device) -> None:
        """``precision=auto`` and ``compute=auto`` become what they mean on ``device`` (``world_model/compute.py``)."""
        if cfg.precision == "auto":
            cfg.precision = resolve_precision("auto", device)
        if cfg.compute == "auto":
            cfg.compute = resolve_compute("auto", device)

    def activation_floats_per_step(self) -> int:
        """The linear layers' outputs and the ensembles' (each member counted): the Q-ensemble is one layer."""
        return super().activation_floats_per_step() + sum(
            module.weight.shape[0] * module.weight.shape[-1]
            for module in self.modules_once() if isinstance(module, EnsembleLinear))

    def __init__(self, cfg: Config, spec, observation_space, action_space, device: torch.device,
                 num_tasks: int = 1, task_id: int = 0, action_dims: list[int] | None = None,
                 discounts: list[float] | None = None):
        super().__init__(cfg, spec, observation_space, action_space, device)
        cfg.validate()
        self.horizon = cfg.horizon
        self.discount = cfg.discount if cfg.discount is not None else spec.discount
        self.replay_open_episode = cfg.replay_open_episode
        full = action_space.shape[0]
        self.action_dims = [int(d) for d in action_dims] if action_dims is not None else [full] * num_tasks
        if len(self.action_dims) != num_tasks or not all(0 < d <= full for d in self.action_dims):
            raise ValueError(f"action_dims {self.action_dims} must give one size in 1..{full} per task ({num_tasks})")
        if discounts is not None and len(discounts) != num_tasks:
            raise ValueError(f"discounts has {len(discounts)} entries for {num_tasks} tasks")
        overrides = {**cfg.model_overrides(), "task_dim": cfg.task_dim or default_task_dim(num_tasks)}
        self.model = WorldModel(resolve(cfg.model_size, **overrides), observation_space.shape,
                                full, num_tasks=num_tasks,
                                action_dims=self.action_dims if num_tasks > 1 else None).to(device)
        try:
            self.precision = resolve_precision(cfg.precision, device)
        except ValueError as err:
            raise ConfigError(str(err)) from None
        try:
            self.compute_path = resolve_compute(cfg.compute, device)
        except ValueError as err:
            raise ConfigError(str(err)) from None
        set_compute_path(self.model, self.compute_path)
        self.task = torch.tensor([task_id], device=device) if num_tasks > 1 else None
        self.task_id = task_id
        self.discounts: torch.Tensor | None = None
        if num_tasks > 1:  # one discount per task (the released multi-task code); agent.discount overrides all
            per_task = [cfg.discount if cfg.discount is not None else float(d)
                        for d in (discounts if discounts is not None else [self.discount] * num_tasks)]
            self.discounts = torch.tensor(per_task, dtype=torch.float32, device=device)
            self.discount = per_task[task_id]
        self.mppi_cfg = cfg.mppi(action_space.shape[0])
        model = self.model
        encoder_lr = cfg.lr * cfg.enc_lr_scale
        groups = [{"params": model._encoder.parameters(), "lr": encoder_lr},
                  {"params": model._dynamics.parameters()}, {"params": model._reward.parameters()},
                  {"params": model._Qs.parameters()}]
        if model._termination is not None:
            groups.append({"params": model._termination.parameters()})
        if model.multitask:
            groups.append({"params": model.task_emb.parameters()})
        self.optim = torch.optim.Adam(groups, lr=cfg.lr)
        self.joint_parameters = list(model.parameters())  # what the joint loss's gradient clip sees
        self.pi_optim = torch.optim.Adam(model._pi.parameters(), lr=cfg.lr, eps=1e-5)
        self.scale = RunningScale(cfg.tau).to(device)
        self.prev_mean: torch.Tensor | None = None
        self.num_updates = 0
        self.rho_weights = cfg.rho ** torch.arange(cfg.horizon + 1, dtype=torch.float32, device=device)

    # --- tasks ------------------------------------------------------------------------------------------------
    def set_task(self, task_id: int) -> None:
        """Play task ``task_id`` of a multi-task agent from now on: its embedding, discount and action size."""
        if self.discounts is None:
            raise RuntimeError("set_task needs a multi-task agent (num_tasks > 1)")
        if not 0 <= task_id < len(self.action_dims):
            raise ValueError(f"task id {task_id} out of range 0..{len(self.action_dims) - 1}")
        self.task_id = task_id
        self.task = torch.tensor([task_id], device=self.device)
        self.discount = float(self.discounts[task_id])
        self.reset()

    def discount_of(self, task: torch.Tensor | None) -> float | torch.Tensor:
        """The discount of each row (B, 1) of a multi-task batch (the released per-task discounts), else the scalar."""
        if self.discounts is None or task is None:
            return self.discount
        return self.discounts[task.long()].unsqueeze(-1)

    def planning_discount(self, task: torch.Tensor | None) -> float | torch.Tensor:
        """The discount of each planned state (B, 1, 1: it broadcasts over the samples), else the scalar."""
        if self.discounts is None or task is None:
            return self.discount
        return self.discounts[task.long()].view(-1, 1, 1)

    def obs_tensor(self, obs: np.ndarray) -> torch.Tensor:
        """One observation as a batch of one; a multi-task agent zero-pads a smaller task's state (as the
        released multi-task wrapper does)."""
        x = torch.as_tensor(obs, device=self.device)
        size = self.observation_space.shape[0]
        if self.discounts is not None and not self.model.pixels and x.shape[-1] < size:
            x = F.pad(x, (0, size - x.shape[-1]))
        return x.unsqueeze(0)

    def task_action(self, action: torch.Tensor) -> np.ndarray:
        """The first row of ``action`` for the env; a multi-task agent drops the current task's padded dims."""
        out = action[0].cpu().numpy().astype(np.float32)
        return out[: self.action_dims[self.task_id]] if self.discounts is not None else out

    # --- acting -----------------------------------------------------------------------------------------------
    def reset(self) -> None:
        self.prev_mean = None

    def plan(self, z: torch.Tensor, eval_mode: bool, prev_mean: torch.Tensor | None = None,
             task: torch.Tensor | None = None) -> Plan:
        return mppi_plan(self.model, z, self.mppi_cfg, self.planning_discount(task), prev_mean=prev_mean,
                         task=task, eval_mode=eval_mode)

    def autocast(self):
        """The context of the world model's forward passes: bf16 autocast when ``precision`` resolved to bf16."""
        return autocast(self.precision, self.device)

    @torch.no_grad()
    def act(self, obs: np.ndarray, eval_mode: bool) -> np.ndarray:
        self.model.eval()
        with self.autocast():
            z = self.model.encode(self.obs_tensor(obs), self.task)
            if self.cfg.mpc:
                plan = self.plan(z, eval_mode, self.prev_mean, self.task)
                self.prev_mean = plan.mean
                action = plan.action
            else:
                out = self.model.pi(z, self.task)
                action = out.mean if eval_mode else out.action
        return self.task_action(action)

    @torch.no_grad()
    def value_estimate(self, obs: np.ndarray) -> float:
        """Q(z_0, π(z_0)) of a start state: compared with the collected return, it shows over-estimation."""
        self.model.eval()
        with self.autocast():
            z = self.model.encode(self.obs_tensor(obs), self.task)
            return self.model.Q(z, self.model.pi(z, self.task).mean, self.task, return_type="avg").item()

    # --- learning ---------------------------------------------------------------------------------------------
    def _batch(self, source: ReplayBuffer | Batch):
        """The update's tensors, time-major: a :class:`Batch` as given (offline training samples its own, e.g. from
        ``offline.cache.DatasetCache``, whose ``task`` holds each row's task id), else ``batch_size``
        sub-trajectories sampled from ``source``."""
        batch = source if isinstance(source, Batch) else source.sample(self.cfg.batch_size, horizon=self.cfg.horizon)
        dev = self.device
        obs = torch.as_tensor(batch.obs, device=dev).transpose(0, 1)  # (H+1, B, ...)
        action = torch.as_tensor(batch.action, device=dev).transpose(0, 1)
        reward = torch.as_tensor(batch.reward, device=dev).transpose(0, 1).unsqueeze(-1)
        terminated = torch.as_tensor(batch.terminated, device=dev, dtype=torch.float32).transpose(0, 1).unsqueeze(-1)
        if self.model.pixels and not self.model.augment_in_encoder:  # augment="batch" (FIDELITY.md D5)
            obs = self.model.augment(obs)
        if self.discounts is not None and batch.task is not None:  # a multi-task dataset: each row's own task
            task = torch.as_tensor(batch.task, device=dev).long()
        else:
            task = None if self.task is None else self.task.expand(obs.shape[1])
        return obs, action, reward, terminated, task

    def target_q(self, next_z: torch.Tensor, next_action: torch.Tensor, task: torch.Tensor | None) -> torch.Tensor:
        """min(Q̄_i, Q̄_j)(z', a'): two random target Qs, or Q̄₀ and Q̄₁ (``target_q_pair``, FIDELITY.md D7)."""
        members = (0, 1) if self.cfg.target_q_pair == "first" else None
        return self.model.Q(next_z, next_action, task, "min", target=True, members=members)

    @torch.no_grad()
    def td_target(self, next_z: torch.Tensor, reward: torch.Tensor, terminated: torch.Tensor,
                  task: torch.Tensor | None) -> torch.Tensor:
        """y = r + γ (1 − d) min(Q̄_i, Q̄_j)(z', a'), a' ~ π(z')."""
        next_action = self.model.pi(next_z, task).action
        return reward + self.discount_of(task) * (1 - terminated) * self.target_q(next_z, next_action, task)

    def update(self, buffer: ReplayBuffer | Batch) -> dict[str, float]:
        """One TD-MPC2 update: world model (consistency, reward, value[, termination]), then the policy prior.
        ``buffer``: a replay buffer to sample from, or a sampled :class:`Batch` (multi-task: with ``task``)."""
        batch = self._batch(buffer)
        with self.autocast():
            metrics = self.update_world_model(*batch)
            self.num_updates += 1
            if self.cfg.diag_every and self.num_updates % self.cfg.diag_every == 0:
                obs, action, reward, _, task = batch
                metrics.update(self.diagnostics(obs, action, reward, task))
        return metrics

    def update_world_model(self, obs: torch.Tensor, action: torch.Tensor, reward: torch.Tensor,
                           terminated: torch.Tensor, task: torch.Tensor | None) -> dict[str, float]:
        """The joint world-model loss over the horizon, the policy-prior step and the target-Q EMA."""
        cfg, model = self.cfg, self.model
        with torch.no_grad():
            next_z = model.encode(obs[1:], task)
            td_targets = self.td_target(next_z, reward, terminated, task)

        model.train()
        z = model.encode(obs[0], task)
        zs = [z]
        consistency = torch.zeros((), device=self.device)
        for t in range(cfg.horizon):
            z = model.next(z, action[t], task)
            consistency = consistency + F.mse_loss(z, next_z[t]) * cfg.rho ** t
            zs.append(z)
        zs_t = torch.stack(zs)  # (H+1, B, D)
        rollout = zs_t[:-1]
        q_logits = model.Q(rollout, action, task, return_type="all")  # (K, H, B, bins)
        reward_logits = model.reward(rollout, action, task)
        weights = self.rho_weights[: cfg.horizon].view(-1, 1, 1)
        reward_loss = (model.soft_ce(reward_logits, reward) * weights).mean(dim=(1, 2)).sum()
        value_loss = (model.soft_ce(q_logits, td_targets.unsqueeze(0).expand(q_logits.shape[0], -1, -1, -1))
                      * weights).mean(dim=(2, 3)).sum()
        consistency, reward_loss = consistency / cfg.horizon, reward_loss / cfg.horizon
        value_loss = value_loss / (cfg.horizon * q_logits.shape[0])
        total = cfg.consistency_coef * consistency + cfg.reward_coef * reward_loss + cfg.value_coef * value_loss
        extra, metrics = self.joint_loss_terms(rollout, action, task)
        total = total + extra
        if model._termination is not None:
            termination_loss = F.binary_cross_entropy_with_logits(model.termination(zs_t[1:], task).float(), terminated)
            total = total + cfg.termination_coef * termination_loss
            metrics["termination_loss"] = termination_loss.item()
        self.optim.zero_grad(set_to_none=True)
        total.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.joint_parameters, cfg.grad_clip_norm)
        self.optim.step()
        # No gradient may outlive its update (as in official TD-MPC2): a resumed process starts with none, so a
        # leftover one (e.g. the policy prior's, which the joint clip above sees) would change grad_norm on resume.
        self.optim.zero_grad(set_to_none=True)

        pi_metrics = self.update_pi(zs_t.detach(), task)
        model.soft_update_target_Q()
        metrics.update(consistency_loss=consistency.item(), reward_loss=reward_loss.item(),
                       value_loss=value_loss.item(), total_loss=total.item(), grad_norm=grad_norm.item(),
                       **pi_metrics)
        return metrics

    def joint_loss_terms(self, rollout: torch.Tensor, action: torch.Tensor,
                         task: torch.Tensor | None) -> tuple[torch.Tensor, dict[str, float]]:
        """Losses of further networks trained inside the joint world-model loss (same optimiser and gradient clip),
        from the rollout latents z_0..z_{H−1} (H, B, D; not detached: each term detaches what the released code
        detaches) and their actions (H, B, A). None in TD-MPC2."""
        return torch.zeros((), device=self.device), {}

    def update_pi(self, zs: torch.Tensor, task: torch.Tensor | None) -> dict[str, float]:
        """Policy prior: maximise ρ-weighted Q/scale + entropy_coef · scaled entropy over the rollout latents."""
        out = self.model.pi(zs, task)
        q = self.model.Q(zs, out.action, task, return_type="avg", detach=True)
        self.scale.update(q[0])
        q = self.scale(q)
        pi_loss = (-(self.cfg.entropy_coef * out.scaled_entropy + q).mean(dim=(1, 2)) * self.rho_weights).mean()
        self.pi_optim.zero_grad(set_to_none=True)
        pi_loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model._pi.parameters(), self.cfg.grad_clip_norm)
        self.pi_optim.step()
        self.pi_optim.zero_grad(set_to_none=True)  # see update_world_model: no gradient outlives its update
        return {"pi_loss": pi_loss.item(), "pi_entropy": out.entropy.mean().item(), "pi_scale": self.scale.value.item()}

    @torch.no_grad()
    def diagnostics(self, obs: torch.Tensor, action: torch.Tensor, reward: torch.Tensor,
                    task: torch.Tensor | None) -> dict[str, float]:
        """On buffer states: the acting planner's drift from the replay's actions (``behaviour_drift``), MPPI's final
        Gaussian against the policy prior (``search_prior_drift``), and TD / cross-TD error (bootstrap from the
        policy prior Q is trained with / from MPPI's mean plan, the acting policy)."""
        n = min(self.cfg.diag_batch, obs.shape[1])
        model = self.model
        model.eval()
        task_n = None if task is None else task[:n]
        z, next_z = model.encode(obs[0, :n], task_n), model.encode(obs[1, :n], task_n)
        search = self.plan(z, eval_mode=True, task=task_n)
        prior = model.pi(z, task_n)
        drift = search_prior_drift(search.mean[:, 0], search.std[:, 0], prior.mu, prior.log_std)
        next_search = self.plan(next_z, eval_mode=True, task=task_n)
        errors = td_errors(model, z, action[0, :n], reward[0, :n], next_z, model.pi(next_z, task_n).action,
                           next_search.mean[:, 0], self.discount_of(task_n), task_n)
        model.train()
        return {**drift, **behaviour_drift(search.action, action[0, :n]), **errors}

    def on_seeding_done(self, buffer: ReplayBuffer, seed_steps: int,
                        report: Callable[[int, int], None] | None = None) -> dict[str, float]:
        """TD-MPC2 pre-trains on the seed data with as many updates as seed steps (``report(done, n)``: progress)."""
        n = self.cfg.pretrain_updates if self.cfg.pretrain_updates is not None else seed_steps
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        if report is not None:
            report(0, n)
        for i in range(n):
            for key, value in self.update(buffer).items():
                sums[key] = sums.get(key, 0.0) + value
                counts[key] = counts.get(key, 0) + 1
            if report is not None:
                report(i + 1, n)
        return {f"pretrain_{key}": value / counts[key] for key, value in sums.items()}

    # --- checkpoints ------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "optim": self.optim.state_dict(),
                "pi_optim": self.pi_optim.state_dict(), "scale": self.scale.state_dict(),
                "num_updates": self.num_updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optim.load_state_dict(state["optim"])
        self.pi_optim.load_state_dict(state["pi_optim"])
        self.scale.load_state_dict(state["scale"])
        self.num_updates = state["num_updates"]
