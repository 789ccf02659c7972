"""One run's life cycle: configure, (resume,) seed, act/store/update, evaluate, checkpoint, finish.

Evaluations and checkpoints happen only at episode boundaries, so a checkpoint never needs a simulator's
mid-episode state: every episode is reset with a seed derived from (run seed, episode index), and the
checkpoint carries the agent, the buffer, every RNG state and the loop counters. A run killed at any point
and started again with the same command therefore ends with the same eval.csv, bit for bit on CPU.
"""

from __future__ import annotations

import json
import math
import shutil
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from tqdm import tqdm

from algorithms.common import progress as progress_module
from algorithms.common import runfiles
from algorithms.common.agent import Agent
from algorithms.common.buffer import ReplayBuffer
from algorithms.common.checkpoint import CheckpointManager
from algorithms.common.config import (NON_SEMANTIC_KEYS, ConfigError, RunConfig, apply_values, config_hash,
                                      dump_yaml, load_yaml, to_dict)
from algorithms.common.device import resolve_device
from algorithms.common.progress import CostMeter, Progress
from algorithms.common.seeding import derived_seed, rng_state, seed_everything, set_rng_state
from algorithms.common.sinks import make_sinks
from algorithms.registry import get_algorithm
from envs import make_env
from envs.registry import TaskSpec, get_task

EVAL_COLUMNS = ("step", "episode_return", "episode_return_std", "episode_return_min", "episode_return_max",
                "success", "episode_length", "episodes")
TRAIN_COLUMNS = ("step", "updates", "episodes", "wall_time_s", "env_steps_per_s", "update_ms", "act_ms")
EPISODE_COLUMNS = ("step", "episode", "episode_return", "success", "episode_length")

# Seed streams: independent RNGs for training episodes, evaluation episodes, the buffer and seed actions.
TRAIN_EPISODES, EVAL_EPISODES, BUFFER, SEED_ACTIONS, REEVALUATION = range(5)


class NonFiniteLossError(FloatingPointError):
    """A loss, metric or weight became NaN or inf; the message names it (a weight: its module) and the step."""


PARAMETER_CHECK_EVERY = 100
"""Updates between checks that every weight is finite (also checked before each checkpoint)."""


NON_FINITE_STOP = "non_finite"
"""run.json's ``stop_reason`` after a NonFiniteLossError: the same command then refuses to resume unless asked."""


class RunInterrupted(Exception):
    """SIGTERM (e.g. a scheduler's time limit) arrived; the last checkpoint is where the run resumes."""


class RunError(RuntimeError):
    """A run that cannot start: unwritable results folder, a different run in the same folder, …"""


class ConfigMismatchError(RunError):
    """The config asked for differs from the one the run's checkpoint was trained with; nothing was changed."""


def build_config(algo: str | None = None, config_file: str | None = None,
                 overrides: dict[str, str] | None = None) -> RunConfig:
    """Defaults < YAML file < ``key=value`` overrides, validated (unknown keys and bad values raise ConfigError)."""
    from algorithms.common.config import apply_overrides

    from algorithms.common.config import field_types
    from algorithms.common.finetune import explicit_agent_keys, resolve_init

    values = load_yaml(config_file) if config_file else {}
    overrides = dict(overrides or {})
    algo = overrides.pop("algo", None) or algo or values.pop("algo", None) or "sac"
    values.pop("algo", None)
    entry = get_algorithm(algo)
    cfg = RunConfig(algo=algo, agent=entry.load().Config())
    apply_values(cfg, values)
    apply_overrides(cfg, overrides)
    # fine-tuning (init.checkpoint): the pretrained model's shape into cfg.agent, its SHA-256 into cfg.init
    resolve_init(cfg, explicit_agent_keys(values, overrides, set(field_types(type(cfg.agent))),
                                          set(field_types(RunConfig))))
    validate(cfg)
    return cfg


def validate(cfg: RunConfig) -> None:
    get_algorithm(cfg.algo)
    if cfg.is_offline:
        from algorithms.common.offline_trainer import validate_offline

        validate_offline(cfg)
    else:
        try:
            get_task(cfg.task, cfg.obs)
        except (KeyError, ValueError) as err:
            raise ConfigError(str(err)) from None
    for key in ("steps", "eval_every", "checkpoint_every"):
        value = getattr(cfg, key)
        if value is not None and value <= 0:
            raise ConfigError(f"config key {key!r} must be positive, got {value}")
    if cfg.seed_steps is not None and cfg.seed_steps < 0:  # 0: act with the agent from the first step
        raise ConfigError(f"config key 'seed_steps' must be non-negative, got {cfg.seed_steps}")
    for key in ("eval_episodes", "log_every", "buffer_size", "keep_checkpoints"):
        if getattr(cfg, key) <= 0:
            raise ConfigError(f"config key {key!r} must be positive, got {getattr(cfg, key)}")
    if cfg.seed < 0:
        raise ConfigError(f"config key 'seed' must be non-negative, got {cfg.seed}")
    if cfg.device != "auto" and cfg.device != "cpu" and not cfg.device.startswith("cuda"):
        raise ConfigError(f"unknown device {cfg.device!r}; valid: 'auto', 'cpu', 'cuda', 'cuda:N'")
    if hasattr(cfg.agent, "validate"):
        cfg.agent.validate()


@dataclass
class Schedule:
    """The run's step arithmetic, resolved from the config and the task (env steps unless named agent)."""

    total: int
    eval_every: int
    checkpoint_every: int
    seed_env_steps: int

    @classmethod
    def of(cls, cfg: RunConfig, spec: TaskSpec) -> "Schedule":
        total = cfg.steps or spec.budget
        episode_env_steps = spec.episode_length * spec.action_repeat
        eval_every = cfg.eval_every or (100_000 if total >= 1_000_000 else max(total // 10, episode_env_steps))
        # fine-tuning skips seeding by default (METHOD.md: "start from pretrained world model + score net, skip
        # seeding"); from scratch, the task's max(1000, 5 x episode length)
        default = 0 if cfg.is_finetune else spec.seed_steps
        seed_steps = cfg.seed_steps if cfg.seed_steps is not None else default
        return cls(total=total, eval_every=eval_every, checkpoint_every=cfg.checkpoint_every or eval_every,
                   seed_env_steps=seed_steps * spec.action_repeat)


def run_dir_for(cfg: RunConfig) -> Path:
    """``{results_dir}/runs/{name}/{task}/{seed}``; an offline run's task folder is its dataset's folder name."""
    if cfg.is_offline:
        return Path(cfg.results_dir) / "runs" / cfg.run_name / Path(cfg.offline.dataset).resolve().name / str(cfg.seed)
    spec = get_task(cfg.task, cfg.obs)
    return Path(cfg.results_dir) / "runs" / cfg.run_name / spec.name / str(cfg.seed)


# Agent keys added after runs were made, with the value that computed those runs (compared as if present).
_KEYS_ADDED_LATER = {"precision": "fp32", "compute": "reference"}


def _with_keys_added_later(data: dict[str, Any]) -> dict[str, Any]:
    """A run config as plain data, with the agent keys it predates set to what computed it."""
    if isinstance(data.get("agent"), dict) and data.get("algo") in ("tdmpc2", "mbdpo"):
        return {**data, "agent": {**_KEYS_ADDED_LATER, **data["agent"]}}
    return data


def _semantic(data: dict[str, Any]) -> dict[str, Any]:
    return _with_keys_added_later({k: v for k, v in data.items()
                                   if k not in NON_SEMANTIC_KEYS and k != "format_version"})


def pin_machine_defaults(cfg: RunConfig) -> None:
    """Resolve config values that depend on the machine before the run records its config: ``agent.precision=auto``
    and ``agent.compute=auto`` become what they mean here (``world_model/compute.py``), so that the run's config
    says how it computed and a resume elsewhere that would resolve differently is refused as a config change
    instead of mixing two compute paths in one run."""
    from algorithms.world_model.compute import resolve_compute, resolve_precision

    if getattr(cfg.agent, "precision", None) == "auto":
        cfg.agent.precision = resolve_precision("auto", resolve_device(cfg.device))
    if getattr(cfg.agent, "compute", None) == "auto":
        cfg.agent.compute = resolve_compute("auto", resolve_device(cfg.device))


def _differences(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """One ``key: old -> new`` line per differing (nested, dotted) key."""
    keys = sorted(set(old) | set(new))
    out = []
    for key in keys:
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, prefix + key + ".")
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return out


class MetricAccumulator:
    """Means of the per-update metrics over one train.csv interval."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    def add(self, metrics: dict[str, float]) -> None:
        for key, value in metrics.items():
            self.sums[key] = self.sums.get(key, 0.0) + value
            self.counts[key] = self.counts.get(key, 0) + 1

    def means(self) -> dict[str, float]:
        return {k: self.sums[k] / self.counts[k] for k in self.sums}

    def clear(self) -> None:
        self.sums.clear()
        self.counts.clear()

    def state(self) -> dict[str, Any]:
        return {"sums": dict(self.sums), "counts": dict(self.counts)}

    def load(self, state: dict[str, Any]) -> None:
        self.sums, self.counts = dict(state["sums"]), dict(state["counts"])


def non_finite_tensor(agent: Agent) -> str | None:
    """The name of the agent's first weight (parameter or buffer) holding a NaN or inf, or None."""
    for name, tensor in agent.named_tensors():
        if not bool(torch.isfinite(tensor).all()):
            return name
    return None


def floating_tensors(tree: Any) -> Iterator[torch.Tensor]:
    """Every floating-point tensor in a nested state (dicts, lists, tuples), e.g. a checkpoint's agent state."""
    stack: list[Any] = [tree]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            stack += list(value.values())
        elif isinstance(value, (list, tuple)):
            stack += list(value)
        elif isinstance(value, torch.Tensor) and value.is_floating_point():
            yield value


def non_finite_in_state(state: dict[str, Any]) -> str | None:
    """Why a loaded checkpoint must not be resumed from (a non-finite agent tensor), or None."""
    if any(not bool(torch.isfinite(t).all()) for t in floating_tensors(state["agent"])):
        return "holds non-finite weights"
    return None


def check_finite(metrics: dict[str, float], env_step: int, updates: int, agent: Agent | None = None,
                 unit: str = "env step") -> None:
    """Stop the run (NonFiniteLossError) on a NaN or inf metric of the last update or, given ``agent``, weight.

    A weight is named by its module (``<agent attribute>.<first component>``) with the update's loss terms,
    so the message says where it went wrong; raised before a checkpoint is written, it keeps the last one intact.
    """
    for name, value in metrics.items():
        if not math.isfinite(value):
            raise NonFiniteLossError(f"non-finite loss {name!r} = {value} at {unit} {env_step} (update {updates}); "
                                     "the run stops here, its last checkpoint is intact")
    if agent is None:
        return
    name = non_finite_tensor(agent)
    if name is not None:
        module = ".".join(name.split(".")[:2])
        losses = ", ".join(f"{key}={value:.4g}" for key, value in metrics.items()) or "none"
        raise NonFiniteLossError(f"non-finite weights in module {module!r} (parameter {name!r}) at {unit} "
                                 f"{env_step} (update {updates}); last update's losses: {losses}; "
                                 "the run stops here, its last checkpoint is intact")


def evaluate_policy(agent: Agent, env, episodes: int, seed_of,
                    on_episode: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Mean return (and success at the last step, where the suite defines it) of the deterministic policy.

    ``on_episode(k)`` is called after the k-th episode: an evaluation at default planning on a CPU takes minutes,
    and the progress says how far it is."""
    returns, lengths, successes, start_values, discounted = [], [], [], [], []
    estimates_value = hasattr(agent, "value_estimate")
    for k in range(episodes):
        obs, _ = env.reset(seed=seed_of(k))
        agent.reset()
        if estimates_value:
            start_values.append(agent.value_estimate(obs))
        total, discounted_total, weight, length, done, info = 0.0, 0.0, 1.0, 0, False, {}
        while not done:
            obs, reward, terminated, truncated, info = env.step(agent.act(obs, eval_mode=True))
            total += float(reward)
            discounted_total += weight * float(reward)
            weight *= getattr(agent, "discount", 1.0)
            length += 1
            done = terminated or truncated
        returns.append(total)
        discounted.append(discounted_total)
        lengths.append(length)
        if "success" in info:
            successes.append(float(info["success"]))
        if on_episode is not None:
            on_episode(k + 1)
    values = np.asarray(returns, dtype=np.float64)
    return {
        "episode_return": float(values.mean()), "episode_return_std": float(values.std()),
        "episode_return_min": float(values.min()), "episode_return_max": float(values.max()),
        "success": float(np.mean(successes)) if successes else None,
        "episode_length": float(np.mean(lengths)), "episodes": episodes,
        "returns": returns,
        # value over-estimation (METHOD.md): the learned value of the start states beside what was collected
        **({"value_estimate": float(np.mean(start_values)), "discounted_return": float(np.mean(discounted))}
           if estimates_value else {}),
    }


class OnlineTrainer:
    def __init__(self, cfg: RunConfig, run_dir: Path):
        self.cfg = cfg
        self.spec = get_task(cfg.task, cfg.obs)
        self.run_dir = run_dir
        self.schedule = Schedule.of(cfg, self.spec)
        self.device = resolve_device(cfg.device)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        seed_everything(cfg.seed)
        self.env = make_env(cfg.task, seed=cfg.seed, obs=cfg.obs, shadows=cfg.render_shadows)
        self.eval_env = make_env(cfg.task, seed=cfg.seed, obs=cfg.obs, shadows=cfg.render_shadows)
        self.agent: Agent
        self.pretrained = None
        self.finetune_task = None
        if cfg.is_finetune:  # offline-to-online: the pretrained multi-task shape (algorithms/common/finetune.py)
            from algorithms.common import finetune

            self.agent, self.pretrained, self.finetune_task = finetune.build_agent(cfg, self.spec, self.env,
                                                                                   self.device)
            obs_dim = self.agent.observation_space.shape[0]
            self.env = finetune.PaddedObservationEnv(self.env, obs_dim)
            self.eval_env = finetune.PaddedObservationEnv(self.eval_env, obs_dim)
        else:
            algorithm = get_algorithm(cfg.algo).load()
            self.agent = algorithm.Agent(cfg.agent, self.spec, self.env.observation_space,
                                         self.env.action_space, self.device)
        space = self.env.observation_space
        # the agent's action size: a fine-tuning agent's is the pretrained (padded) one, wider than the env's
        self.buffer = ReplayBuffer(cfg.buffer_size, space.shape, space.dtype, self.agent.action_space.shape[0],
                                   seed=derived_seed(cfg.seed, BUFFER),
                                   include_open_episode=self.agent.replay_open_episode)
        self.action_rng = np.random.default_rng(derived_seed(cfg.seed, SEED_ACTIONS))
        self.counters = {"env_step": 0, "episode": 0, "updates": 0, "evaluations": 0, "seeding_done": False,
                         "next_eval": 0, "next_checkpoint": self.schedule.checkpoint_every,
                         "next_log": cfg.log_every}
        self.metrics = MetricAccumulator()
        self.timing = MetricAccumulator()
        self.cost = CostMeter()  # the first acts and updates of training: the cost estimate (report_cost)
        self.eval_log = runfiles.CsvLog(run_dir / "eval.csv", EVAL_COLUMNS)
        self.train_log = runfiles.CsvLog(run_dir / "train.csv", TRAIN_COLUMNS)
        self.episode_log = runfiles.CsvLog(run_dir / "episodes.csv", EPISODE_COLUMNS)
        self.checkpoints = CheckpointManager(run_dir / "checkpoints", keep=cfg.keep_checkpoints)
        self.elapsed_before = 0.0
        self.started = time.perf_counter()
        self.last_eval_return: float | None = None
        self.last_metrics: dict[str, float] = {}  # the latest update's, for a non-finite weight's message
        self.run_info: dict[str, Any] = {}
        self.sinks: list = []  # created in run(): nothing is written to the run folder before the agent builds

    # --- bookkeeping ---------------------------------------------------------------------------------------
    @property
    def wall_time(self) -> float:
        return self.elapsed_before + time.perf_counter() - self.started

    def finetune_info(self) -> dict[str, Any]:
        """run.json's record of the pretrained start (results/README.md): none for a run from scratch."""
        if self.finetune_task is None:
            return {}
        return {"init_checkpoint": str(self.pretrained.path), "init_checkpoint_sha256": self.pretrained.sha256,
                "init_pretrained_tasks": self.pretrained.tasks, "init_task_id": self.finetune_task.task_id,
                "init_new_task": self.finetune_task.new,
                "init_buffer_episodes": self.counters.get("init_buffer_episodes", 0)}

    def start_from_pretrained(self) -> None:
        """A fresh fine-tuning run: the pretrained weights, and the replay seeded from ``init.seed_buffer_from``."""
        from algorithms.common import finetune

        finetune.load_weights(self.agent, self.pretrained, self.finetune_task)
        episodes = 0
        if self.cfg.init.seed_buffer_from is not None:
            episodes = finetune.seed_buffer(self.buffer, self.cfg.init.seed_buffer_from, self.spec.name,
                                            self.agent.observation_space.shape[0], self.agent.action_space.shape[0])
        self.counters["init_buffer_episodes"] = episodes  # checkpointed: run.json keeps it after a resume

    def padded_action(self, action: np.ndarray) -> np.ndarray:
        """The action as the replay stores it: zero-padded to the agent's action size (fine-tuning's pretrained
        padding, as the offline datasets pad); unchanged otherwise."""
        width = self.buffer.action.shape[1]
        return action if action.shape[-1] == width else np.pad(action, (0, width - action.shape[-1]))

    def write_run_info(self, status: str, **extra: Any) -> None:
        self.run_info.update({
            "format_version": runfiles.RUN_FORMAT_VERSION, **self.finetune_info(), "status": status, "algo": self.cfg.algo,
            "name": self.cfg.run_name, "task": self.spec.name, "suite": self.spec.suite,
            "domain": self.spec.domain, "seed": self.cfg.seed, "config_hash": config_hash(self.cfg),
            "env_steps_done": self.counters["env_step"], "total_env_steps": self.schedule.total,
            "wall_time_s": round(self.wall_time, 3), "device": str(self.device), "updated_at": runfiles.now(),
            **extra,
        })
        runfiles.atomic_write_json(self.run_dir / "run.json", self.run_info)

    # Hooks the offline trainer (algorithms/common/offline_trainer.py) overrides; the life cycle is shared.
    step_key = "env_step"
    """The counter that names checkpoints and schedules the run (env steps here, gradient updates offline)."""

    def logs(self) -> dict[str, runfiles.CsvLog]:
        """The run's CSV logs by checkpoint name (``csv_rows``), each cut back to its row count on resume."""
        return {"eval": self.eval_log, "train": self.train_log, "episodes": self.episode_log}

    def sampler_state(self) -> dict[str, Any]:
        """Checkpoint entries beside agent, counters, logs and RNGs: what the updates sample from."""
        return {"buffer": self.buffer.state_dict(), "action_rng": self.action_rng.bit_generator.state}

    def load_sampler_state(self, state: dict[str, Any]) -> None:
        self.buffer.load_state_dict(state["buffer"])
        self.action_rng.bit_generator.state = state["action_rng"]

    def flush_logs(self) -> None:
        for log in self.logs().values():
            log.flush()

    def save_checkpoint(self) -> None:
        # never a checkpoint from a non-finite state: a resume would start from it
        check_finite(self.last_metrics, self.counters[self.step_key], self.counters["updates"], self.agent,
                     "env step" if self.step_key == "env_step" else "update")
        self.flush_logs()
        state = {
            "counters": dict(self.counters), "agent": self.agent.state_dict(), **self.sampler_state(),
            "rng": rng_state(),
            "csv_rows": {name: len(log) for name, log in self.logs().items()},
            # what the logs held: a resume restores a log that was damaged or cut since (run-file integrity)
            "logs": {name: log.state() for name, log in self.logs().items()},
            "metrics": self.metrics.state(), "timing": self.timing.state(), "wall_time_s": self.wall_time,
            "config": to_dict(self.cfg),
        }
        self.checkpoints.save(state, self.counters[self.step_key])
        self.write_run_info("running")

    def check_config(self, trained: dict[str, Any], path: Path) -> None:
        """Raise ConfigMismatchError naming every key in which this run's config differs from ``trained``."""
        diffs = _differences(_semantic(trained), _semantic(to_dict(self.cfg)))
        if diffs:
            raise ConfigMismatchError(
                f"{self.run_dir} holds a run with another config ({'; '.join(diffs)}; recorded in checkpoint "
                f"{path.name}); use another --results-dir or name=..., or delete that folder")

    def restore_config_file(self, config: dict[str, Any], from_checkpoint: bool) -> None:
        """Write config.yaml from ``config`` if the run folder lacks it (a new run, or one that lost the file)."""
        config_file = self.run_dir / "config.yaml"
        if not config_file.exists():
            runfiles.atomic_write_text(config_file, dump_yaml(config))
            if from_checkpoint:
                print(f"note: {config_file} was missing; written from the config the run was trained with",
                      file=sys.stderr)

    def reconcile_logs(self, state: dict[str, Any], path: Path) -> None:
        """Cut each log back to what checkpoint ``path`` recorded, or restore it from there when the file lost
        rows, changed or cannot be read (saying so, naming the file)."""
        saved = state.get("logs")
        for name, log in self.logs().items():
            if saved is None:  # a checkpoint from before logs were kept in it: only row counts to check
                rows = state["csv_rows"][name]
                if log.damage or len(log) < rows:
                    problem = log.damage or f"{log.path} has {len(log)} row(s), checkpoint {path.name} recorded {rows}"
                    raise RunError(f"{problem}; this older checkpoint holds no copy to restore it from: move "
                                   f"{log.path.name} back, or delete {self.run_dir} to start over")
                log.truncate(rows)
                continue
            problem = log.disagreement(saved[name])
            if problem is None:
                log.truncate(len(saved[name]["rows"]))
                continue
            log.restore(saved[name])
            log.flush()
            print(f"warning: {problem}; restored its {len(log)} row(s) from checkpoint {path.name} (later rows are "
                  "written again as the run resumes)", file=sys.stderr)

    def resume(self) -> bool:
        """Continue from the newest usable checkpoint; archive stale files when there is none."""
        state, path, problems = self.checkpoints.load_latest(reject=non_finite_in_state)
        for problem in problems:
            print(f"warning: {problem}; falling back to an older checkpoint", file=sys.stderr)
        if state is not None:
            self.check_config(state["config"], path)  # before anything is loaded or truncated
        self.restore_config_file(state["config"] if state is not None else to_dict(self.cfg), state is not None)
        if state is None:
            stale = list(self.logs().values())
            if any(len(log) or log.damage for log in stale) or problems:
                archive = self.run_dir / "restarts" / time.strftime("%Y%m%d-%H%M%S")
                archive.mkdir(parents=True, exist_ok=True)
                for name in (*(log.path.name for log in stale), "run.json", "checkpoints"):
                    if (self.run_dir / name).exists():
                        shutil.move(str(self.run_dir / name), archive / name)
                print(f"warning: no usable checkpoint; starting over (earlier files kept in {archive})",
                      file=sys.stderr)
                for log in stale:
                    log.restore({"columns": log.columns, "rows": []})
            return False
        self.agent.load_state_dict(state["agent"])
        self.load_sampler_state(state)
        set_rng_state(state["rng"])
        self.counters.update(state["counters"])  # in place: run() holds a reference
        self.metrics.load(state["metrics"])
        self.timing.load(state["timing"])
        self.elapsed_before = state["wall_time_s"]
        self.reconcile_logs(state, path)
        if self.eval_log.rows:
            self.last_eval_return = float(self.eval_log.rows[-1]["episode_return"])
        unit = "env step" if self.step_key == "env_step" else "update"
        print(f"resuming from {path} at {unit} {self.counters[self.step_key]}", file=sys.stderr)
        return True

    # --- the loop ------------------------------------------------------------------------------------------
    def evaluate(self, progress: Progress | None = None) -> None:
        # weights checked first: a policy of NaNs would fail inside the evaluation with a less useful message
        check_finite(self.last_metrics, self.counters["env_step"], self.counters["updates"], self.agent)
        index = self.counters["evaluations"]
        n = self.cfg.eval_episodes
        report = None
        if progress is not None:
            detail = f"evaluation at {self.step_key.replace('_', ' ')} {self.counters[self.step_key]:,}"
            progress.count("evaluating", 0, n, "episode", detail)

            def report(done: int) -> None:
                progress.count("evaluating", done, n, "episode", detail)
        result = evaluate_policy(self.agent, self.eval_env, n,
                                 lambda k: derived_seed(self.cfg.seed, EVAL_EPISODES, index, k), report)
        result.pop("returns")
        row = {"step": self.counters["env_step"], **result}
        self.eval_log.append(row)
        self.eval_log.flush()
        for sink in self.sinks:
            sink.log("eval", row["step"], row)
        self.counters["evaluations"] += 1
        self.last_eval_return = result["episode_return"]

    def log_train_row(self, steps_per_s: float) -> None:
        timing = self.timing.means()
        row = {"step": self.counters["env_step"], "updates": self.counters["updates"],
               "episodes": self.counters["episode"], "wall_time_s": round(self.wall_time, 3),
               "env_steps_per_s": round(steps_per_s, 2),
               "update_ms": timing.get("update_s", math.nan) * 1e3, "act_ms": timing.get("act_s", math.nan) * 1e3,
               **self.metrics.means()}
        self.train_log.append(row)
        self.train_log.flush()  # so that progress can be watched; resume truncates what a checkpoint did not see
        for sink in self.sinks:
            sink.log("train", row["step"], row)
        self.metrics.clear()
        self.timing.clear()

    def pretraining_report(self, progress: Progress) -> Callable[[int, int], None]:
        """The callback of ``agent.on_seeding_done``: the pretraining phase's count (k/N updates), and each
        update's duration for the cost estimate (the callback follows each update)."""
        last = time.perf_counter()

        def report(done: int, total: int) -> None:
            nonlocal last
            now = time.perf_counter()
            if done:
                self.cost.update(now - last)
            last = now
            progress.count("pretraining", done, total, "update", "updates on the seed data")
        return report

    def remaining_evaluations(self) -> int:
        """Evaluations still to come: one per ``eval_every`` boundary before the end, and the final one."""
        total, every = self.schedule.total, self.schedule.eval_every
        at, n = self.counters["next_eval"], 1
        while at < total:  # approximate: an evaluation waits for the episode boundary at or past its step
            n += 1
            at += every
        return n

    def report_cost(self) -> None:
        """On a CPU, once the first acts and updates of training are timed: one stderr line (and run.json's
        ``cost_estimate``) with the measured cost, the whole run's estimate and, when large, the lighter settings.
        Nothing about the run changes: the user asked for these settings."""
        self.cost.reported = True
        if self.device.type != "cpu":  # CUDA timings are asynchronous and a GPU is what the defaults are for
            return
        c, schedule, repeat = self.counters, self.schedule, self.spec.action_repeat
        # a run ends at the first episode boundary at or past its total (fixed-length episodes: a multiple of them)
        episode = self.spec.episode_length * repeat
        end = -(-schedule.total // episode) * episode
        remaining = -(-(end - max(c["env_step"], schedule.seed_env_steps)) // repeat)
        cost = progress_module.estimate(self.cost, max(remaining, 0), self.remaining_evaluations(),
                                        self.cfg.eval_episodes * self.spec.episode_length, self.wall_time)
        hint, hint_file = progress_module.lighter_settings(self.cfg.algo, self.cfg.agent, self.cfg.eval_episodes)
        cost["large"] = cost["estimate_s"] > progress_module.LARGE_COST_S
        cost["lighter_settings"] = hint if cost["large"] else []
        tqdm.write(progress_module.cost_line(self.cfg.algo, str(self.device), cost, hint, hint_file, "--steps"),
                   file=sys.stderr)
        self.write_run_info("running", cost_estimate=cost)

    def run_episode(self, progress: Progress) -> None:
        c, spec, schedule = self.counters, self.spec, self.schedule
        obs, _ = self.env.reset(seed=derived_seed(self.cfg.seed, TRAIN_EPISODES, c["episode"]))
        self.agent.reset()
        self.buffer.add_first(obs)
        episode_return, length, done, info = 0.0, 0, False, {}
        interval_start, interval_steps = time.perf_counter(), 0
        while not done:
            if c["env_step"] < schedule.seed_env_steps:
                progress.phase("seeding", "random actions", end=schedule.seed_env_steps)
                action = self.action_rng.uniform(-1.0, 1.0, self.env.action_space.shape).astype(np.float32)
            else:
                progress.phase("training")
                tic = time.perf_counter()
                action = self.agent.act(obs, eval_mode=False)
                elapsed = time.perf_counter() - tic
                self.timing.add({"act_s": elapsed})
                self.cost.act(elapsed)
            obs, reward, terminated, truncated, info = self.env.step(action)
            self.buffer.add(self.padded_action(action), reward, terminated, obs)
            c["env_step"] += spec.action_repeat
            progress.advance(spec.action_repeat)  # before the updates: a phase they start begins at this step
            interval_steps += spec.action_repeat
            episode_return += float(reward)
            length += 1
            done = terminated or truncated
            if done:  # the released code adds it one step later, before that step's update: one update apart
                self.buffer.end_episode()
            if c["env_step"] >= schedule.seed_env_steps and self.buffer.can_sample(self.agent.horizon):
                if not c["seeding_done"]:
                    c["seeding_done"] = True
                    metrics = self.agent.on_seeding_done(
                        self.buffer, schedule.seed_env_steps // spec.action_repeat,
                        report=self.pretraining_report(progress))
                    check_finite(metrics, c["env_step"], c["updates"], self.agent)
                    progress.phase("training")
                tic = time.perf_counter()
                metrics = self.agent.update(self.buffer)
                elapsed = time.perf_counter() - tic
                self.timing.add({"update_s": elapsed})
                self.cost.update(elapsed)
                c["updates"] += 1
                self.last_metrics = metrics
                check_finite(metrics, c["env_step"], c["updates"],
                             self.agent if c["updates"] % PARAMETER_CHECK_EVERY == 0 else None)
                self.metrics.add(metrics)
                if self.cost.ready:
                    self.report_cost()
            if c["env_step"] >= c["next_log"]:
                now = time.perf_counter()
                self.log_train_row(interval_steps / max(now - interval_start, 1e-9))
                interval_start, interval_steps = now, 0
                c["next_log"] += self.cfg.log_every
        success = info.get("success")
        self.episode_log.append({"step": c["env_step"], "episode": c["episode"], "episode_return": episode_return,
                                 "success": None if success is None else float(success), "episode_length": length})
        c["episode"] += 1

    def warn_if_never_updates(self) -> None:
        """A run whose steps end before its seed steps do only ever acts at random: say so before it starts (the
        obvious first command, ``--steps 3000`` on cartpole with its 2,500 seed agent steps, is such a run)."""
        schedule, repeat = self.schedule, self.spec.action_repeat
        if schedule.total > schedule.seed_env_steps:
            return
        seed_agent = schedule.seed_env_steps // repeat
        what = ("never updates the agent nor acts with it" if schedule.total < schedule.seed_env_steps else
                "updates the agent only at its last step and never acts with it")
        example = max(schedule.total // repeat // 10, 1)
        print(f"warning: this run {what}: its {schedule.total:,} env steps end before its seed steps do "
              f"(seed_steps={seed_agent:,} agent steps x action repeat {repeat} = {schedule.seed_env_steps:,} env "
              f"steps of random actions, the task's default unless set). Lower seed_steps (e.g. seed_steps={example}) "
              f"or raise --steps above {schedule.seed_env_steps:,}", file=sys.stderr)

    def run(self) -> Path:
        c, schedule = self.counters, self.schedule
        resumed = self.resume()
        if not resumed and self.pretrained is not None:  # a resume has loaded the run's own checkpoint instead
            self.start_from_pretrained()
        self.sinks = make_sinks(self.cfg.loggers, self.run_dir, f"{self.cfg.run_name}-{self.spec.name}-{self.cfg.seed}",
                                to_dict(self.cfg))
        self.write_run_info("running", started_at=runfiles.now(), resumed=resumed,
                            git_commit=runfiles.git_commit(), versions=runfiles.package_versions(),
                            **runfiles.host_info())
        self.warn_if_never_updates()
        with Progress(schedule.total, c["env_step"], "step", f"{self.cfg.algo} {self.spec.name} s{self.cfg.seed}",
                      enabled=self.cfg.progress) as progress:
            last_checkpoint_step = c["env_step"] if resumed else -1
            while True:  # each pass is one episode boundary
                finished = c["env_step"] >= schedule.total
                if c["env_step"] >= c["next_eval"] or finished:
                    c["next_eval"] = max(c["next_eval"], c["env_step"] - c["env_step"] % schedule.eval_every)
                    c["next_eval"] += schedule.eval_every
                    self.evaluate(progress)
                    progress.postfix(eval_return=f"{self.last_eval_return:.1f}")
                # after the evaluation of this step, so that a checkpoint (the last one above all) holds its row
                due = c["env_step"] >= c["next_checkpoint"]
                if (due or finished) and c["env_step"] != last_checkpoint_step:
                    if due:
                        c["next_checkpoint"] += schedule.checkpoint_every
                    self.save_checkpoint()
                    last_checkpoint_step = c["env_step"]
                if finished:
                    break
                self.run_episode(progress)
        self.flush_logs()
        self.write_run_info("finished", finished_at=runfiles.now())
        for sink in self.sinks:
            sink.close()
        return self.run_dir


def make_run_dir(cfg: RunConfig) -> Path:
    """The run's folder, created and checked writable (RunError naming the results folder if not)."""
    run_dir = run_dir_for(cfg)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-probe"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise RunError(f"results folder {cfg.results_dir!r} is not writable ({err.strerror}: {err.filename}; "
                       f"{runfiles.free_space(run_dir)} free there); choose another with --results-dir") from None
    return run_dir


def lock_run_dir(run_dir: Path) -> runfiles.RunLock:
    """Take the run folder's exclusive lock, or RunError naming the process that holds it."""
    lock = runfiles.RunLock(run_dir)
    try:
        lock.acquire()
    except runfiles.RunLocked as err:
        raise RunError(f"{run_dir} is in use by another training process ({err.holder}, lock {err.path}); "
                       "wait for it to end or stop it, then run this command again") from None
    return lock


def read_run_info(run_dir: Path) -> dict[str, Any]:
    """run.json's contents, or {} when absent or unreadable (it is written atomically, so never half-written)."""
    try:
        return json.loads((run_dir / "run.json").read_text())
    except (OSError, ValueError):
        return {}


def prepare_run_dir(cfg: RunConfig, resume_non_finite: bool = False) -> tuple[Path, bool]:
    """The run's folder, checked writable and consistent with an earlier run there; True if already finished.

    Nothing is written here: config.yaml is written once the agent has been built (OnlineTrainer.resume).
    """
    run_dir = make_run_dir(cfg)
    config_file = run_dir / "config.yaml"
    new = to_dict(cfg)
    if config_file.exists():
        old = load_yaml(config_file)
        old.setdefault("algo", cfg.algo)
        diffs = _differences(_semantic(old), _semantic(new))
        if diffs:
            raise RunError(f"{run_dir} holds a run with another config ({'; '.join(diffs)}); "
                           "use another --results-dir or name=..., or delete that folder")
    info = read_run_info(run_dir)
    if info.get("status") == "finished":
        return run_dir, True
    if info.get("stop_reason") == NON_FINITE_STOP and not resume_non_finite:
        raise RunError(f"{run_dir} stopped on non-finite values ({info.get('error', 'no message recorded')}). "
                       "Resuming would repeat the same computation from its last finite checkpoint; to do so anyway "
                       "(e.g. after changing the code, or on a GPU, which is not bit for bit) add --resume-non-finite; "
                       "to change a hyper-parameter use another name=... or --results-dir")
    # When config.yaml is gone but a checkpoint holds the config that trained, the trainer compares the two on
    # resume and restores config.yaml from the checkpoint, so that the file records what trained.
    return run_dir, False


def check_finished_run(cfg: RunConfig, run_dir: Path) -> None:
    """Before a run is reported finished: its config is the one asked for and its files are whole.

    The final checkpoint holds a copy of every log: a log that was deleted, cut, edited or damaged since is
    restored from it, and a missing config.yaml is rewritten from it (each said on stderr). Without that
    checkpoint (e.g. deleted to save space) a missing or unreadable log is a RunError naming the file.
    """
    info = read_run_info(run_dir)
    state, path, _ = CheckpointManager(run_dir / "checkpoints").load_latest()
    if cfg.is_offline:
        from algorithms.common.offline_trainer import OFFLINE_EVAL_COLUMNS, OFFLINE_TRAIN_COLUMNS

        step_key, total = "updates", info.get("total_steps")
        logs = (("eval", OFFLINE_EVAL_COLUMNS), ("train", OFFLINE_TRAIN_COLUMNS))
    else:
        step_key, total = "env_step", info.get("total_env_steps")
        logs = (("eval", EVAL_COLUMNS), ("train", TRAIN_COLUMNS), ("episodes", EPISODE_COLUMNS))
    if state is not None and total is not None and state["counters"][step_key] < total:
        state = None  # not the final checkpoint: it cannot vouch for the finished logs
    config_file = run_dir / "config.yaml"
    asked = to_dict(cfg)
    if state is not None:
        diffs = _differences(_semantic(state["config"]), _semantic(asked))
        if diffs:
            raise ConfigMismatchError(f"{run_dir} holds a finished run with another config ({'; '.join(diffs)}; "
                                      f"recorded in checkpoint {path.name}); use another --results-dir or name=...")
    elif not config_file.exists() and info.get("config_hash") not in (None, config_hash(cfg)):
        raise ConfigMismatchError(f"{run_dir} holds a finished run with another config (config_hash "
                                  f"{info.get('config_hash')} in run.json, {config_hash(cfg)} asked; its config.yaml "
                                  "is missing); use another --results-dir or name=...")
    if not config_file.exists():
        runfiles.atomic_write_text(config_file, dump_yaml(state["config"] if state is not None else asked))
        print(f"note: {config_file} was missing; written from the "
              f"{'final checkpoint' if state is not None else 'config asked for (run.json has the same hash)'}",
              file=sys.stderr)
    saved = state.get("logs") if state is not None else None
    for name, columns in logs:
        log = runfiles.CsvLog(run_dir / f"{name}.csv", columns)
        if saved is not None:
            problem = log.disagreement(saved[name]) if log.path.exists() else f"{log.path} is missing"
            if problem is None and len(log) != len(saved[name]["rows"]):
                problem = f"{log.path} has {len(log)} row(s), the final checkpoint recorded {len(saved[name]['rows'])}"
            if problem is not None:
                log.restore(saved[name])
                log.flush()
                print(f"warning: {problem}; restored it from the final checkpoint {path.name}", file=sys.stderr)
            continue
        problem = log.damage or (None if log.path.exists() else f"{log.path} is missing")
        if problem is None and name == "eval":
            last = int(float(log.rows[-1]["step"])) if log.rows else None
            if total is not None and (last is None or last < total):
                problem = f"{log.path} ends at step {last}, before the run's {total} steps"
        if problem is not None:
            raise RunError(f"{run_dir} is marked finished but {problem}, and it has no final checkpoint to restore "
                           "it from; move that folder away (or delete it) and run the command again")


def _raise_interrupt(signum, frame):  # noqa: ARG001
    raise RunInterrupted(f"signal {signum}")


def _mark_interrupted(run_dir: Path, trainer: "OnlineTrainer | None") -> None:
    """Set run.json's status to ``interrupted`` (an interrupt before the trainer exists edits the old file)."""
    if trainer is not None:
        trainer.write_run_info("interrupted")
        return
    info_file = run_dir / "run.json"
    if not info_file.exists():
        return  # nothing ran here yet: there is no status to correct
    try:
        info = json.loads(info_file.read_text())
    except json.JSONDecodeError:
        return  # written atomically, so never half-written; an unreadable one is treated as absent
    if info.get("status") != "finished":
        info.update(status="interrupted", updated_at=runfiles.now())
        runfiles.atomic_write_json(info_file, info)


def train(cfg: RunConfig, resume_non_finite: bool = False) -> Path:
    """Run (or resume, or skip if finished) one configured run; returns its folder.

    The run folder is locked for the life of the process, temporary files an interrupted write left there are
    removed first, and SIGTERM or SIGINT at any point leaves run.json with status ``interrupted``. A finished
    run's files are checked (and restored from its final checkpoint) before it is reported finished. A run that
    stopped on non-finite values resumes from its last finite checkpoint only with ``resume_non_finite``.
    A storage failure (disk full, read-only, quota) is a RunError naming the file and the free space.
    """
    # From the first moment, so that a scheduler's SIGTERM during set-up is reported like one during training.
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    lock: runfiles.RunLock | None = None
    trainer: OnlineTrainer | None = None
    run_dir: Path | None = None
    try:
        pin_machine_defaults(cfg)
        run_dir = make_run_dir(cfg)
        lock = lock_run_dir(run_dir)
        stale = runfiles.remove_stale_temp_files(run_dir, run_dir / "checkpoints")
        if stale:
            print(f"warning: removed {len(stale)} temporary file(s) an interrupted write left in {run_dir}: "
                  f"{', '.join(str(p.relative_to(run_dir)) for p in stale)}", file=sys.stderr)
        run_dir, finished = prepare_run_dir(cfg, resume_non_finite)
        if finished:
            check_finished_run(cfg, run_dir)
            print(f"{run_dir} already finished; nothing to do", file=sys.stderr)
            return run_dir
        if cfg.is_offline:
            from algorithms.common.offline_trainer import OfflineTrainer

            trainer = OfflineTrainer(cfg, run_dir)
        else:
            trainer = OnlineTrainer(cfg, run_dir)
        return trainer.run()
    except (RunInterrupted, KeyboardInterrupt):
        if lock is not None and run_dir is not None:  # without the lock, run.json is another process's
            _mark_interrupted(run_dir, trainer)
        raise
    except ConfigMismatchError:
        raise  # only this request was refused: the run and its run.json stay as they were
    except runfiles.ResultsWriteError as err:
        if trainer is not None:
            try:
                trainer.write_run_info("failed", error=str(err))
            except OSError:
                pass  # the same full disk; the message below says what happened
        raise RunError(str(err)) from None
    except Exception as err:
        if trainer is not None:
            extra = {"stop_reason": NON_FINITE_STOP} if isinstance(err, NonFiniteLossError) else {}
            trainer.write_run_info("failed", error=f"{type(err).__name__}: {err}", **extra)
        raise
    finally:
        if lock is not None:
            lock.release()
        signal.signal(signal.SIGTERM, previous)


def evaluate_checkpoint(run_dir: Path, checkpoint: Path | None = None, episodes: int | None = None,
                        device: str = "auto") -> dict[str, Any]:
    """Re-evaluate a run's checkpoint (the newest usable one by default) on fresh evaluation seeds."""
    config_file = run_dir / "config.yaml"
    if not config_file.exists():
        raise RunError(f"{run_dir} is not a run folder (no config.yaml)")
    values = load_yaml(config_file)
    if values.get("offline"):
        dataset = values["offline"].get("dataset")
        raise RunError(f"{run_dir} is an offline multi-task run (offline.dataset={dataset!r}); "
                       "`evaluate` re-evaluates online single-task runs only: its eval.csv has every task's returns")
    # A config written before the render_shadows key existed belongs to a run rendered without shadows
    # (the harness's old fixed setting; FIDELITY.md D5): re-evaluate it as it was trained.
    values.setdefault("render_shadows", False)
    values = _with_keys_added_later(values)  # and one from before issue 17 computed in fp32 on the reference path
    cfg = build_config(values.pop("algo", None), overrides=None)
    apply_values(cfg, values)
    cfg.device = device
    spec = get_task(cfg.task, cfg.obs)
    manager = CheckpointManager(run_dir / "checkpoints")
    if checkpoint is None:
        state, checkpoint, problems = manager.load_latest()
        if state is None:
            raise RunError(f"{run_dir} has no usable checkpoint" + (f": {'; '.join(problems)}" if problems else ""))
    else:
        state = manager.load(Path(checkpoint))
    seed_everything(cfg.seed)
    env = make_env(cfg.task, seed=cfg.seed, obs=cfg.obs, shadows=cfg.render_shadows)
    if cfg.is_finetune:  # the pretrained shape; the weights are the run's own, from its checkpoint below
        from algorithms.common import finetune

        agent = finetune.build_agent(cfg, spec, env, resolve_device(device))[0]
        env = finetune.PaddedObservationEnv(env, agent.observation_space.shape[0])
    else:
        agent = get_algorithm(cfg.algo).load().Agent(cfg.agent, spec, env.observation_space, env.action_space,
                                                     resolve_device(device))
    agent.load_state_dict(state["agent"])
    n = episodes or cfg.eval_episodes
    result = evaluate_policy(agent, env, n, lambda k: derived_seed(cfg.seed, REEVALUATION, k))
    return {"run_dir": str(run_dir), "checkpoint": str(checkpoint), "env_step": state["counters"]["env_step"],
            "task": spec.name, "algo": cfg.algo, "seed": cfg.seed, **result}
