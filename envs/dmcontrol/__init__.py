"""dm_control behind the gymnasium API: standard suite tasks, the custom tasks of ``custom.py``, pixels.

Action repeat and the episode limit live inside :class:`DMControlEnv` rather than in stacked wrappers:
the wrapper's cost per step is benchmarked against the raw dm_control step (benchmarks/env_step.py).

Pixels are rendered as the released TD-MPC2 code rendered them (FIDELITY.md D5): dm_control's visual
settings, shadows included. ``shadows=False`` (run key ``render_shadows=false``) turns shadows off, which
renders 2-4x faster with Mesa on a CPU but gives observations that differ from the published runs'. The
offscreen buffer is shrunk to the frame size either way: measured on five Visual RL tasks, a 64x64 frame is
bit-identical whether the buffer is 64x64 or dm_control's 640x480.

MuJoCo >= 3.16 warns while compiling a model that uses a deprecated compiler attribute (dm_control's cheetah.xml:
``settotalmass``), and dm_control passes the warning to absl logging, one stderr line per cheetah environment
(five per mt30 set). Only those deprecation warnings are dropped, and only while a model is loaded
(:func:`_without_deprecation_warnings`); every other warning still shows.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any, Iterator

import gymnasium as gym
import numpy as np

from envs.registry import TaskSpec
from envs.rendering import configure_gl

configure_gl()  # before dm_control's first import: it reads MUJOCO_GL once

import dm_env  # noqa: E402
from dm_control import suite  # noqa: E402


DEPRECATION_MARK = "is deprecated and will be removed in a future release"
"""The words of MuJoCo's model-compiler deprecation warnings (``compiler attribute 'settotalmass' is deprecated
and will be removed in a future release: ...``)."""


class _CompilerDeprecationFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return DEPRECATION_MARK not in record.getMessage()


@contextlib.contextmanager
def _without_deprecation_warnings() -> Iterator[None]:
    """Drop MuJoCo's model-compiler deprecation warnings, which dm_control logs through absl, while a model loads."""
    logger = logging.getLogger("absl")
    quiet = _CompilerDeprecationFilter()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


def load_dm_env(spec: TaskSpec, seed: int | None):
    """The raw dm_control environment of a registered DMControl task."""
    with _without_deprecation_warnings():
        if spec.custom:
            from envs.dmcontrol import custom

            return custom.load(spec.base, random=seed)
        domain, task = spec.source.split("/")
        return suite.load(domain, task, task_kwargs={"random": seed})


class DMControlEnv(gym.Env):
    """A dm_control task as a gymnasium env: float32 state vector or one channels-first uint8 frame.

    Actions are taken in [-1, 1] and rescaled to the task's bounds. One ``step`` repeats the action
    ``spec.action_repeat`` times and sums the rewards; the episode is truncated after
    ``spec.episode_length`` agent steps (DMControl never terminates).
    """

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, spec: TaskSpec, seed: int | None = None, shadows: bool = True):
        self.spec_ = spec
        self.shadows = shadows
        self._env = load_dm_env(spec, seed)
        self._physics = self._env.physics
        self._pixels = spec.obs == "rgb"
        action_spec = self._env.action_spec()
        self._action_low = action_spec.minimum.astype(np.float64)
        self._action_scale = (action_spec.maximum - action_spec.minimum).astype(np.float64) / 2.0
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=action_spec.shape, dtype=np.float32)
        if self._pixels:
            size = spec.render_size
            self.observation_space = gym.spaces.Box(0, 255, shape=(3, size, size), dtype=np.uint8)
            # A buffer of the frame's size renders the same pixels as dm_control's 640x480 one, a little faster.
            # Both settings must be made before the first render: the GL context is built from them then.
            self._physics.model.vis.global_.offwidth = size
            self._physics.model.vis.global_.offheight = size
            if not shadows:  # shadowsize 0 = no shadow map (the released runs had dm_control's 2048)
                self._physics.model.vis.quality.shadowsize = 0
        else:
            size = sum(int(np.prod(v.shape)) for v in self._env.observation_spec().values())
            self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(size,), dtype=np.float32)
        # Most tasks' actions already lie in [-1, 1]: skip the rescale there (it is most of our per-step cost).
        self._identity_actions = bool(np.all(action_spec.minimum == -1.0) and np.all(action_spec.maximum == 1.0))
        self._dm_step = self._env.step
        self._agent_steps = 0

    @property
    def physics(self):
        return self._physics

    @property
    def dm_env(self):
        return self._env

    def _observe(self, observation: dict[str, Any]) -> np.ndarray:
        if self._pixels:
            frame = self._physics.render(self.spec_.render_size, self.spec_.render_size,
                                         camera_id=self.spec_.camera_id)
            return np.ascontiguousarray(frame.transpose(2, 0, 1))
        return np.concatenate(tuple(observation.values()), axis=None, dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:
            # dm_control draws initial states from the task's RandomState.
            self._env.task._random = np.random.RandomState(seed)
        time_step = self._env.reset()
        self._agent_steps = 0
        return self._observe(time_step.observation), {}

    def step(self, action: np.ndarray):
        if self._identity_actions:
            dm_action = action  # dm_control copies it into physics.data.ctrl at once
        else:
            dm_action = self._action_low + (np.asarray(action, dtype=np.float64) + 1.0) * self._action_scale
        reward = 0.0
        step = self._dm_step
        for _ in range(self.spec_.action_repeat):
            time_step = step(dm_action)
            reward += time_step.reward or 0.0
            if time_step.step_type is dm_env.StepType.LAST:
                break
        self._agent_steps += 1
        truncated = time_step.step_type is dm_env.StepType.LAST or self._agent_steps >= self.spec_.episode_length
        return self._observe(time_step.observation), reward, False, truncated, {}

    def render(self) -> np.ndarray:
        return self._physics.render(256, 256, camera_id=self.spec_.camera_id)

    def close(self) -> None:
        self._env.close()


def make(spec: TaskSpec, seed: int | None = None, shadows: bool = True) -> gym.Env:
    """The gymnasium env of a DMControl task; ``shadows`` matters for pixels only (FIDELITY.md D5)."""
    from envs.wrappers import FrameStack

    env: gym.Env = DMControlEnv(spec, seed, shadows=shadows)
    if spec.obs == "rgb" and spec.frame_stack > 1:
        env = FrameStack(env, spec.frame_stack)
    return env
