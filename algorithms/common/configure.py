"""Building a run's config and checking it: defaults < YAML file < ``key=value`` overrides, validated against the
algorithm's own rules and (offline) the dataset; the machine-dependent defaults the agent pins before a run records
its config; and the comparison of two configs a resume, a finished run or ``evaluate`` relies on.

The typed dataclasses and the parsing of values live in ``config.py``; this module joins them with the registry of
algorithms, the task registry and the offline datasets, which ``config.py`` does not know.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from algorithms.common.config import (NON_SEMANTIC_KEYS, OFFLINE_UNUSED_KEYS, ConfigError, RunConfig,
                                      apply_overrides, apply_values, field_types, load_yaml)
from algorithms.common.device import resolve_device
from algorithms.registry import get_algorithm
from envs import availability
from envs.registry import get_task
from offline.dataset import DatasetError, read_manifest


def build_config(algo: str | None = None, config_file: str | None = None,
                 overrides: dict[str, str] | None = None) -> RunConfig:
    """Defaults < YAML file < ``key=value`` overrides, validated (unknown keys and bad values raise ConfigError)."""
    from algorithms.common.finetune import explicit_agent_keys, resolve_init

    values = load_yaml(config_file) if config_file else {}
    overrides = dict(overrides or {})
    algo = overrides.pop("algo", None) or algo or values.pop("algo", None) or "sac"
    values.pop("algo", None)
    entry = get_algorithm(algo)
    cfg = RunConfig(algo=algo, agent=entry.load().Config())
    apply_values(cfg, values)
    apply_overrides(cfg, overrides)
    absolute_paths(cfg)
    # fine-tuning (init.checkpoint): the pretrained model's shape into cfg.agent, its SHA-256 into cfg.init
    resolve_init(cfg, explicit_agent_keys(values, overrides, set(field_types(type(cfg.agent))),
                                          set(field_types(RunConfig))))
    validate(cfg)
    return cfg


PATH_KEYS = (("offline", "dataset"), ("init", "checkpoint"), ("init", "seed_buffer_from"))
"""Config keys naming files: taken from the working directory once, when the config is built, so that config.yaml
names the same files whatever directory a resume (or ``evaluate``, or the workflow) runs from."""


def absolute(path: str) -> str:
    """``path`` from the working directory, ``..`` and ``~`` resolved, symlinks kept (they may be the point)."""
    return os.path.abspath(os.path.expanduser(path))


def absolute_paths(cfg: RunConfig) -> None:
    """Each of :data:`PATH_KEYS` that is set, made absolute against the working directory (symlinks kept)."""
    for section, key in PATH_KEYS:
        block = getattr(cfg, section)
        value = getattr(block, key)
        if value:
            setattr(block, key, absolute(value))


def validate(cfg: RunConfig) -> None:
    """ConfigError naming the first bad value of a run config: the algorithm, the task (or, offline, the dataset),
    the step counts, the seed, the device, then the agent's own rules (its ``Config.validate``)."""
    get_algorithm(cfg.algo)
    if cfg.is_offline:
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


def validate_offline(cfg: RunConfig) -> None:
    """ConfigError naming the first problem of an offline run's config: no ``steps``, a bad batch size, a dataset
    that cannot be read, a dataset task missing from the registry or not available here (and why), or an
    algorithm without multi-task support."""
    if cfg.steps is None:
        raise ConfigError("config key 'steps' is required for offline training: the number of gradient updates "
                          "(e.g. steps=100000)")
    if cfg.offline.batch_size <= 0:
        raise ConfigError(f"config key 'offline.batch_size' must be positive, got {cfg.offline.batch_size}")
    try:
        manifest = read_manifest(cfg.offline.dataset)
    except DatasetError as err:
        raise ConfigError(f"config key 'offline.dataset': {err}") from None
    for task in manifest["tasks"]:
        try:
            spec = get_task(task, "state")
        except (KeyError, ValueError) as err:
            raise ConfigError(f"task {task!r} of dataset {cfg.offline.dataset}: {err}") from None
        ok, reason = availability(spec)
        if not ok:
            raise ConfigError(f"task {task!r} of dataset {cfg.offline.dataset} is not available on this machine "
                              f"({reason}); offline training evaluates every task of the dataset")
    agent_cls = get_algorithm(cfg.algo).load().Agent
    if not hasattr(agent_cls, "set_task"):
        raise ConfigError(f"algorithm {cfg.algo!r} has no multi-task agent; offline training supports tdmpc2 and "
                          "mbdpo")


def pin_machine_defaults(cfg: RunConfig) -> None:
    """Resolve config values that depend on the machine before the run records its config: the agent pins them
    (``Agent.resolve_machine_defaults``, e.g. TD-MPC2's ``precision=auto``), so that the run's config says how it
    computed and a resume elsewhere that would resolve differently is refused as a config change instead of mixing
    two compute paths in one run."""
    agent_cls = get_algorithm(cfg.algo).load().Agent
    agent_cls.resolve_machine_defaults(cfg.agent, resolve_device(cfg.device))


def with_keys_added_later(data: dict[str, Any]) -> dict[str, Any]:
    """A run config as plain data, with the agent keys it predates set to what computed it (the algorithm's
    ``Config.KEYS_ADDED_LATER``), so that an old run compares equal to the same run asked for today."""
    if not isinstance(data.get("agent"), dict):
        return data
    try:
        entry = get_algorithm(str(data.get("algo")))
    except ConfigError:  # an algorithm not installed here: its config is compared as written
        return data
    added = getattr(entry.load().Config, "KEYS_ADDED_LATER", {})
    return {**data, "agent": {**added, **data["agent"]}} if added else data


def semantic(data: dict[str, Any]) -> dict[str, Any]:
    """The keys of a run config that change what is computed (not where, how it is logged or its format). A file
    path a config from before :func:`absolute_paths` holds relative is compared as the absolute path it named from
    the working directory, as it was then read."""
    data = with_keys_added_later({k: v for k, v in data.items()
                                  if k not in NON_SEMANTIC_KEYS and k != "format_version"})
    if data.get("offline"):  # a config.yaml from before these keys were left out (config.to_dict)
        data = {k: v for k, v in data.items() if k not in OFFLINE_UNUSED_KEYS}
        if isinstance(data.get("agent"), dict) and "batch_size" in data["agent"]:
            data["agent"] = {k: v for k, v in data["agent"].items() if k != "batch_size"}
    for section, key in PATH_KEYS:
        block = data.get(section)
        if isinstance(block, dict) and isinstance(block.get(key), str) and not Path(block[key]).is_absolute():
            data = {**data, section: {**block, key: absolute(block[key])}}
    return data


def differences(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """One ``key: old -> new`` line per differing (nested, dotted) key."""
    keys = sorted(set(old) | set(new))
    out = []
    for key in keys:
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += differences(a, b, prefix + key + ".")
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return out


def semantic_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """:func:`differences` of the keys that change what a run computes."""
    return differences(semantic(old), semantic(new))
