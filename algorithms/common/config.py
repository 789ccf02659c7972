"""Typed run configuration: one dataclass for the run, one per algorithm under ``agent``.

Sources, later ones winning: the dataclass defaults, a YAML file, then ``key=value`` overrides from the
command line. Keys are ``seed``, ``steps``, … for the run and ``agent.lr`` (or just ``lr`` when no run key
has that name) for the algorithm. Every value is coerced to its field's type; an unknown key or a value of
the wrong type stops with :class:`ConfigError` naming the key and what would be valid.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

CONFIG_FORMAT_VERSION = 2


class ConfigError(ValueError):
    """A bad configuration key or value; the message names it and what would be valid."""


def check_ranges(cfg: Any, positive: tuple[str, ...] = (), non_negative: tuple[str, ...] = (),
                 fraction: tuple[str, ...] = (), rate: tuple[str, ...] = ()) -> None:
    """ConfigError naming the first ``agent.<key>`` out of range: ``positive`` > 0, ``non_negative`` >= 0,
    ``fraction`` in [0, 1) (probabilities such as dropout), ``rate`` in (0, 1] (EMA rates, discounts); None is
    left alone (a default resolved later). Checked before anything is built or written, so a value torch would
    reject (a negative learning rate) is one message, not a traceback."""
    ranges = [(positive, lambda v: v > 0, "> 0"), (non_negative, lambda v: v >= 0, ">= 0"),
              (fraction, lambda v: 0 <= v < 1, "in [0, 1)"), (rate, lambda v: 0 < v <= 1, "in (0, 1]")]
    for keys, ok, text in ranges:
        for key in keys:
            value = getattr(cfg, key)
            if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value) and ok(value)):
                raise ConfigError(f"config key 'agent.{key}' must be {text}, got {value!r}")


OFFLINE_BATCH_SIZE = 1024
"""Sub-trajectories per offline update: the released TD-MPC2 offline (multi-task) batch, and METHOD.md's."""


@dataclass
class OfflineConfig:
    """Offline training (``offline.<key>=value``): gradient updates on a dataset, no environment interaction."""

    dataset: str | None = None
    """An offline dataset folder (``offline/dataset.py``'s format); None = online training."""
    batch_size: int = OFFLINE_BATCH_SIZE
    """Sub-trajectories per update (released: 1024); ``agent.batch_size`` is the online key and is not used."""


@dataclass
class InitConfig:
    """Offline-to-online fine-tuning (``init.<key>=value``; issue 16, paper fig. 7): an online run that starts from a
    pretrained multi-task checkpoint instead of random weights (algorithms/common/finetune.py)."""

    checkpoint: str | None = None
    """A pretrained offline run folder (its newest checkpoint) or one checkpoint file (``step_*.pt``); None = train
    from scratch. The run is built in the pretrained shape (padding, tasks, model size) and loads its weights."""
    checkpoint_sha256: str | None = None
    """SHA-256 of that checkpoint file, filled in when the config is built (or given, to pin one): a resume whose
    pretrained checkpoint changed since is refused as a config change."""
    seed_buffer_from: str | None = None
    """An offline dataset folder: the replay buffer starts with the fine-tuning task's episodes from it (when it
    holds that task); None = an empty buffer (METHOD.md: start from the pretrained model, skip seeding)."""


@dataclass
class RunConfig:
    """What one run is: which algorithm on which task with which seed, for how long, logged where."""

    algo: str = "sac"
    """Algorithm name (``mbdpo-bench train --help`` lists them)."""
    task: str = "cartpole-balance"
    """Task name from the registry (``mbdpo-bench tasks``)."""
    obs: str | None = None
    """Observation kind, ``state`` or ``rgb``; None takes the task entry's own."""
    render_shadows: bool = True
    """Pixels only: render with dm_control's shadows, as the released TD-MPC2 code did (FIDELITY.md D5);
    false renders 2-4x faster on a CPU but the frames differ from the published runs'."""
    seed: int = 1
    """Seeds python, numpy, torch and the environments; the same seed gives the same curve on CPU."""
    steps: int | None = None
    """Environment steps (action repeat included, as the published curves count); None = the task's budget."""
    eval_every: int | None = None
    """Env steps between evaluations; None = 100k, or steps/10 for shorter runs."""
    eval_episodes: int = 10
    """Episodes per evaluation, with the deterministic policy."""
    checkpoint_every: int | None = None
    """Env steps between checkpoints (taken at the next episode end); None = eval_every."""
    keep_checkpoints: int = 2
    """How many checkpoints to keep; older ones are the fallback when the newest is corrupt."""
    seed_steps: int | None = None
    """Agent steps of random actions before learning; None = the task's max(1000, 5 x episode length)."""
    buffer_size: int = 1_000_000
    """Replay capacity in agent steps."""
    log_every: int = 1000
    """Env steps between rows of train.csv."""
    results_dir: str = "results"
    """Root of run files: ``{results_dir}/runs/{name}/{task}/{seed}/``."""
    name: str | None = None
    """Run-family name in the results path (ablation variants); None = the algorithm's name."""
    device: str = "auto"
    """``auto`` (CUDA when present), ``cpu`` or ``cuda``."""
    loggers: list[str] = field(default_factory=list)
    """Extra sinks beside CSV: ``tensorboard``, ``wandb`` (optional dependencies)."""
    progress: bool = True
    """Show a progress bar (steps/s, last eval return, ETA)."""
    threads: int = 0
    """torch CPU threads; 0 keeps torch's default."""
    memory_limit: str = "auto"
    """Memory the run's estimated need is checked against before it starts (algorithms/common/memory.py; offline
    runs): ``auto`` = the device's (free GPU memory, available RAM), ``none`` = no check, or a size (``24GiB``)."""
    offline: OfflineConfig = field(default_factory=OfflineConfig)
    """Offline training on a dataset (``offline.dataset``); then ``steps``, ``eval_every``, ``checkpoint_every``
    and ``log_every`` count gradient updates, and ``task``/``obs``/``seed_steps``/``buffer_size`` are unused."""
    init: InitConfig = field(default_factory=InitConfig)
    """Start an online run from a pretrained checkpoint (``init.checkpoint``): offline-to-online fine-tuning."""
    agent: Any = None
    """The algorithm's hyper-parameter dataclass."""

    @property
    def is_offline(self) -> bool:
        return self.offline.dataset is not None

    @property
    def is_finetune(self) -> bool:
        """An online run that starts from a pretrained checkpoint (``init.checkpoint``)."""
        return self.init.checkpoint is not None

    @property
    def run_name(self) -> str:
        """The run family's folder name: ``name``, else the algorithm (``<algo>-offline`` for offline runs,
        ``<algo>-finetune`` for runs from a pretrained checkpoint, so that the from-scratch run of the same config
        keeps its own folder)."""
        if self.name:
            return self.name
        return f"{self.algo}-offline" if self.is_offline else f"{self.algo}-finetune" if self.is_finetune else self.algo


# Keys that do not change what a run computes: a resumed run may differ in them.
NON_SEMANTIC_KEYS = ("results_dir", "device", "loggers", "progress", "threads", "memory_limit")


def _is_optional(tp: Any) -> tuple[bool, Any]:
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return True, rest[0] if len(rest) == 1 else typing.Union[tuple(rest)]
    return False, tp


def coerce(key: str, value: Any, tp: Any) -> Any:
    """``value`` (from YAML or a command-line string) as type ``tp``, or ConfigError naming ``key``."""
    optional, inner = _is_optional(tp)
    if value is None or (optional and isinstance(value, str) and value.lower() in ("none", "null", "~")):
        if optional:
            return None
        raise ConfigError(f"config key {key!r} cannot be None (expects {getattr(tp, '__name__', tp)})")
    origin = typing.get_origin(inner)
    try:
        if inner is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
                return value.lower() in ("true", "yes", "on", "1")
            raise ValueError
        if inner is int:
            if isinstance(value, bool):
                raise ValueError
            if isinstance(value, str):
                value = float(value) if any(c in value.lower() for c in ".e") else int(value.replace("_", ""))
            if isinstance(value, float):
                if not value.is_integer():
                    raise ValueError
                value = int(value)
            if not isinstance(value, int):
                raise ValueError
            return value
        if inner is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if inner is str:
            if not isinstance(value, str):
                raise ValueError
            return value
        if origin in (list, tuple):
            (item_type,) = typing.get_args(inner)[:1]
            if isinstance(value, str):
                value = [v for v in (p.strip() for p in value.strip("[]").split(",")) if v]
            if not isinstance(value, (list, tuple)):
                raise ValueError
            return [coerce(key, v, item_type) for v in value]
    except (TypeError, ValueError):
        name = getattr(inner, "__name__", str(inner))
        raise ConfigError(f"config key {key!r} expects {name}, got {value!r}") from None
    return value


def field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _unknown_key(key: str, valid: list[str]) -> ConfigError:
    near = difflib.get_close_matches(key, valid, n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(repr(n) for n in near)}?" if near else ""
    return ConfigError(f"unknown config key {key!r}{hint} (valid keys: {', '.join(sorted(valid))})")


def apply_values(obj: Any, values: dict[str, Any], prefix: str = "") -> None:
    """Set dataclass fields of ``obj`` from ``values`` (nested dicts for nested dataclasses), type-checked."""
    types_ = field_types(type(obj))
    for key, value in values.items():
        full = prefix + key
        if key not in types_:
            raise _unknown_key(full, [prefix + k for k in types_])
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ConfigError(f"config key {full!r} is a section; give a mapping, got {value!r}")
            apply_values(current, value, prefix=full + ".")
        else:
            setattr(obj, key, coerce(full, value, types_[key]))


def parse_overrides(items: list[str]) -> dict[str, str]:
    """``["seed=2", "agent.lr=1e-3"]`` as a dict; an item without ``=`` is an error naming it."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        out[key.strip()] = value.strip()
    return out


def apply_overrides(cfg: RunConfig, overrides: dict[str, str]) -> None:
    """Apply ``key=value`` strings: run keys, ``agent.key``, or a bare agent key when unambiguous."""
    run_types = field_types(RunConfig)
    agent_types = field_types(type(cfg.agent))
    for key, value in overrides.items():
        if key.startswith("agent."):
            apply_values(cfg.agent, {key[len("agent."):]: value}, prefix="agent.")
        elif key.startswith("offline."):
            apply_values(cfg.offline, {key[len("offline."):]: value}, prefix="offline.")
        elif key.startswith("init."):
            apply_values(cfg.init, {key[len("init."):]: value}, prefix="init.")
        elif key in run_types and key != "agent":
            apply_values(cfg, {key: value})
        elif key in agent_types:
            apply_values(cfg.agent, {key: value}, prefix="agent.")
        else:
            valid = [k for k in run_types if k not in ("agent", "offline", "init")] \
                + [f"agent.{k}" for k in agent_types] + [f"offline.{k}" for k in field_types(OfflineConfig)] \
                + [f"init.{k}" for k in field_types(InitConfig)]
            raise _unknown_key(key, valid)


OFFLINE_UNUSED_KEYS = ("task",)
"""Run keys an offline run does not read (``agent.batch_size`` neither): left out of its config.yaml."""


def to_dict(cfg: RunConfig) -> dict[str, Any]:
    """The config as plain data; an online run has no ``offline`` section and a run from scratch no ``init``
    section, so that their config.yaml and config_hash are those they had before offline training and fine-tuning
    existed (their folders resume as before)."""
    data = dataclasses.asdict(cfg)
    if not cfg.is_offline:
        data.pop("offline")
    else:  # what an offline run never reads: the tasks are the dataset's, batches are offline.batch_size
        for key in OFFLINE_UNUSED_KEYS:
            data.pop(key, None)
        if isinstance(data.get("agent"), dict):
            data["agent"].pop("batch_size", None)
    if cfg.init == InitConfig():
        data.pop("init")
    data["format_version"] = CONFIG_FORMAT_VERSION
    return data


def config_hash(cfg: RunConfig) -> str:
    """A short hash of what the run computes (seed and non-semantic keys excluded): same hash, same setting."""
    data = to_dict(cfg)
    for key in (*NON_SEMANTIC_KEYS, "seed"):
        data.pop(key, None)
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:12]


def load_yaml(path: str | Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} does not exist") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {str(path)!r} is not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a mapping of keys to values")
    data.pop("format_version", None)
    return data


def dump_yaml(cfg: RunConfig | dict[str, Any]) -> str:
    """config.yaml's text for a config, or for its ``to_dict`` form (e.g. the one a checkpoint holds)."""
    return yaml.safe_dump(cfg if isinstance(cfg, dict) else to_dict(cfg), sort_keys=False)
