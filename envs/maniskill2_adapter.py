"""ManiSkill2 (mani-skill2 0.5.3, SAPIEN 2) behind the registry: state observations, the controllers of TASKS.md,
action repeat 2, 100 agent steps, success from the suite at the last step.

ManiSkill2 cannot share the main environment (it needs numpy < 1.24; see workflow/envs/maniskill2.yaml and
requirements/maniskill2.txt) and SAPIEN 2 always creates a Vulkan renderer, so it runs on GPU nodes only. This
module imports nothing of ManiSkill2 at import time and works under that environment's older numpy and
gymnasium; :func:`unavailable_reason` says, without importing SAPIEN, why a task cannot run on this machine.
"""

from __future__ import annotations

import glob
import importlib.util
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from envs.adapter import RepeatedActionEnv
from envs.registry import TaskSpec

# Downloadable assets the tasks need (ManiSkill2 reads them under $MS2_ASSET_DIR, default ./data):
# `python -m mani_skill2.utils.download_asset ycb` / `… partnet_mobility_faucet`.
ASSETS = {
    "pick-ycb": ("mani_skill2_ycb/info_pick_v0.json", "python -m mani_skill2.utils.download_asset ycb"),
    "turn-faucet": ("partnet_mobility/meta/info_faucet_train.json",
                    "python -m mani_skill2.utils.download_asset partnet_mobility_faucet"),
}
VULKAN_ICD_DIRS = ("/usr/share/vulkan/icd.d", "/etc/vulkan/icd.d", "/usr/local/share/vulkan/icd.d")
SOFTWARE_ICDS = ("lvp", "lavapipe", "swiftshader")


def asset_dir() -> Path:
    return Path(os.environ.get("MS2_ASSET_DIR", "data"))


def vulkan_device_reason() -> str | None:
    """Why no usable Vulkan device is visible (None when one is): a hardware ICD must be installed.

    Software ICDs (Mesa's lavapipe) do not count: SAPIEN 2 finds no suitable rendering device with them.
    ``MBDPO_VULKAN=1`` skips the check (a GPU node whose ICD lives elsewhere)."""
    if os.environ.get("MBDPO_VULKAN") == "1":
        return None
    icds = [p for d in VULKAN_ICD_DIRS for p in glob.glob(f"{d}/*.json")]
    hardware = [p for p in icds if not any(s in Path(p).name.lower() for s in SOFTWARE_ICDS)]
    if hardware:
        return None
    found = f" (only software ICDs: {', '.join(Path(p).name for p in icds)})" if icds else ""
    return ("no Vulkan GPU device: SAPIEN 2 (ManiSkill2) renders with Vulkan even for state observations; run "
            f"ManiSkill2 tasks on a GPU node{found}")


def missing_assets(spec: TaskSpec) -> str | None:
    """The asset file a task needs and does not find, with the command that downloads it (None if complete)."""
    if spec.name not in ASSETS:
        return None
    relative, command = ASSETS[spec.name]
    path = asset_dir() / relative
    if path.exists():
        return None
    return f"assets missing: {path} not found (MS2_ASSET_DIR={asset_dir()}); download with `{command}`"


def unavailable_reason(spec: TaskSpec) -> str | None:
    if importlib.util.find_spec("mani_skill2") is None:
        return ("suite maniskill2 is not installed: it needs its own environment (numpy < 1.24): "
                "`conda env create -f workflow/envs/maniskill2.yaml` or `bash scripts/setup_maniskill2.sh`")
    return vulkan_device_reason() or missing_assets(spec)


def _make_maniskill2(spec: TaskSpec):
    import gymnasium as gym
    import mani_skill2.envs  # noqa: F401 - registers the *-v0 ids

    return gym.make(spec.source, obs_mode="state", control_mode=spec.controller)


class ManiSkill2Env(RepeatedActionEnv):
    """``make_raw(spec)`` builds the ManiSkill2 env (injectable: the tests use a stand-in of its class)."""

    def __init__(self, spec: TaskSpec, seed: int | None = None,
                 make_raw: Callable[[TaskSpec], Any] = _make_maniskill2):
        self._env = make_raw(spec)
        self._seed = seed
        space = self._env.action_space
        self._low, self._high = np.asarray(space.low, dtype=np.float64), np.asarray(space.high, dtype=np.float64)
        self._identity = bool(np.all(self._low == -1.0) and np.all(self._high == 1.0))
        obs_shape = self._env.observation_space.shape
        if obs_shape is None or len(obs_shape) != 1:
            raise ValueError(f"{spec.source}: expected a flat state observation, got {self._env.observation_space}")
        super().__init__(spec, obs_shape[0], space.shape[0])

    @property
    def raw_env(self):
        return self._env

    def _reset(self, seed: int | None) -> np.ndarray:
        if seed is None and self._seed is not None:
            seed, self._seed = self._seed, None
        obs, _ = self._env.reset(seed=seed)
        return obs

    def _sim_step(self, action: np.ndarray) -> tuple[np.ndarray, float, dict[str, Any]]:
        if not self._identity:  # [-1, 1] → the controller's bounds
            action = self._low + (action + 1.0) * 0.5 * (self._high - self._low)
        obs, reward, _, _, info = self._env.step(action)
        return obs, reward, {"success": info.get("success", False)}


def make(spec: TaskSpec, seed: int | None = None) -> ManiSkill2Env:
    return ManiSkill2Env(spec, seed)
