"""The task registry and ``make_env``: every task of the paper behind the gymnasium API.

    >>> from envs import make_env
    >>> env = make_env("cheetah-run", seed=1)              # float32 state, actions in [-1, 1]
    >>> env = make_env("cheetah-run", seed=1, obs="rgb")    # (9, 64, 64) uint8, 3 stacked frames
    >>> env = make_env("cheetah-run", seed=1, obs="rgb", shadows=False)  # faster, not as released
"""

from __future__ import annotations

import importlib.util

from envs.rendering import configure_gl

configure_gl()  # before anything imports dm_control, which reads MUJOCO_GL once

import gymnasium as gym  # noqa: E402

from envs.registry import (DMCONTROL, MANISKILL2, METAWORLD, MYOSUITE, TASKS, TaskPluginError,  # noqa: E402
                           TaskSpec, UnknownTaskError, all_tasks, get_task, plugin_task, task_names,
                           task_plugin_problems)

__all__ = ["TASKS", "TaskSpec", "UnknownTaskError", "TaskPluginError", "SuiteNotInstalledError", "get_task",
           "task_names", "all_tasks", "task_plugin_problems", "make_env", "availability"]

# suite -> (python module that must import, pip extra that installs it)
_SUITE_PACKAGES = {
    DMCONTROL: ("dm_control", "dmc"),
    METAWORLD: ("metaworld", "metaworld"),
    MYOSUITE: ("myosuite", "myosuite"),
    MANISKILL2: ("mani_skill2", "maniskill"),
}


class SuiteNotInstalledError(RuntimeError):
    """The task's simulator suite cannot be created on this machine; the message says why and what to do."""


def availability(spec: TaskSpec) -> tuple[bool, str]:
    """Whether this machine can create the task, and if not, why (without importing the simulator)."""
    if plugin_task(spec.name) is not None:
        return True, ""  # its package imported; what its maker needs, the maker says when it fails
    if spec.suite == MANISKILL2:
        from envs.maniskill2_adapter import unavailable_reason

        reason = unavailable_reason(spec)
        return (reason is None), reason or ""
    module, extra = _SUITE_PACKAGES[spec.suite]
    if importlib.util.find_spec(module) is None:
        return False, f"suite {spec.suite} is not installed: `pip install .[{extra}]`"
    if spec.obs == "rgb":
        from envs.rendering import rendering_unavailable_reason

        reason = rendering_unavailable_reason()
        if reason:
            return False, reason
    return True, ""


def make_env(task: str, seed: int | None = None, obs: str | None = None, *, shadows: bool = True) -> gym.Env:
    """Create a registered task (or the pixel variant of a DMControl task with ``obs="rgb"``).

    Observations are float32 vectors (state) or channels-first uint8 frame stacks (rgb); actions lie in
    [-1, 1]; one step repeats the action ``spec.action_repeat`` times and sums the rewards; episodes end
    (truncated) after ``spec.episode_length`` agent steps; ``info["success"]`` where the suite defines it.
    Pixels are rendered with shadows, as the released TD-MPC2 code did (FIDELITY.md D5); ``shadows=False``
    renders faster but differently. State observations ignore ``shadows``.
    """
    if not isinstance(shadows, bool):
        raise TypeError(f"shadows must be True or False, got {shadows!r}")
    spec = get_task(task, obs)
    plugin = plugin_task(spec.name)
    if plugin is not None:
        return _make_plugin_env(plugin, spec, seed)
    ok, reason = availability(spec)
    if not ok:
        raise SuiteNotInstalledError(f"cannot create task {spec.name!r}: {reason}")
    if spec.suite == DMCONTROL:
        from envs import dmcontrol

        env = dmcontrol.make(spec, seed, shadows=shadows)
    elif spec.suite == METAWORLD:
        from envs import metaworld_adapter

        env = metaworld_adapter.make(spec, seed)
    elif spec.suite == MYOSUITE:
        from envs import myosuite_adapter

        env = myosuite_adapter.make(spec, seed)
    else:
        from envs import maniskill2_adapter

        env = maniskill2_adapter.make(spec, seed)
    if seed is not None:
        env.action_space.seed(seed)
    return env


def _make_plugin_env(plugin, spec: TaskSpec, seed: int | None) -> gym.Env:
    """A plug-in task's env from its maker, checked against the registry's contract (Box spaces, actions in
    [-1, 1]); TaskPluginError naming the package otherwise."""
    import numpy as np

    try:
        env = plugin.make(spec, seed)
    except Exception as err:
        raise TaskPluginError(f"{plugin.where()}: its maker failed: {type(err).__name__}: "
                              f"{' '.join(str(err).split())}") from err
    action, observation = getattr(env, "action_space", None), getattr(env, "observation_space", None)
    if not isinstance(action, gym.spaces.Box) or len(action.shape) != 1:
        raise TaskPluginError(f"{plugin.where()}: its env's action space is {action!r}; the registry's contract is "
                              "a 1-D Box in [-1, 1]")
    if not (np.all(action.low == -1.0) and np.all(action.high == 1.0)):
        raise TaskPluginError(f"{plugin.where()}: its env's actions range over [{np.min(action.low)}, "
                              f"{np.max(action.high)}]; the registry's contract is [-1, 1] (rescale in the env)")
    wanted = (1, np.float32, "a float32 vector") if spec.obs == "state" else (3, np.uint8, "uint8 (C, H, W) frames")
    if not isinstance(observation, gym.spaces.Box) or (len(observation.shape), observation.dtype) != wanted[:2]:
        raise TaskPluginError(f"{plugin.where()}: its env's observation space is {observation!r}; obs={spec.obs!r} "
                              f"tasks observe {wanted[2]}")
    if seed is not None:
        env.action_space.seed(seed)
    return env
