"""Differential tests of the DMControl environments: ours against the authors' released wrappers and custom tasks.

This file owns the comparison of ``envs.make_env`` (DMControl, state observations) with what the released MBDPO
code (``MBDPO/envs/``: ``dmcontrol.make_env`` + ``wrappers/tensor.TensorWrapper``, its ``tasks/*.py`` and their XML;
loaded from ``shared/reference/released-code`` through ``tests/differential/released.py``, never copied here) gives
an agent, for every custom task of the paper and three standard tasks:

* **start states**: the same seed draws the same start (full MuJoCo integration state, the model fields the start
  draws, the observation) in two consecutive episodes, and neither wrapper takes a step at reset (the released
  DMControl wrapper does no zero-action step, unlike its MetaWorld one in ``envs/metaworld.py``: the physics clock
  reads 0 after reset in both);
* **transitions**: from the same physics state (copied from the released env into ours after reset; the two envs
  are built with different seeds so that the copy is what makes them agree), the same seeded random action sequence
  gives the same observations and rewards at every agent step of a whole episode, the physics clock advances by
  ``action_repeat`` (2) control steps per agent step in both, and the episode ends at the same agent step (500:
  released ``done``; ours ``truncated``, never ``terminated``).

Tolerance: ``ATOL`` = 1e-5 on observations and rewards. Observed here (mujoco 3.16.0, dm_control 1.0.49): the
observations and start states are bit-identical; rewards differ by at most ~6e-8, the released ``TensorWrapper``'s
cast of the summed reward to float32 (ours keeps the float64 sum).

Model differences that the comparison covers and finds without effect on states, observations or rewards: the
released walker.xml/cheetah.xml draw a larger floor plane (ours keep dm_control's walker floor and re-centre the
cheetah's; planes are infinite for collision), and the three-link reacher names its bodies/joints differently.
Drawn floors matter for pixels only, which no custom task uses.

Running the released wrappers with gymnasium 1.2.3: they were written for gymnasium < 1.0, whose ``Wrapper``
accepted any object; gymnasium 1.0 added ``assert isinstance(env, gymnasium.Env)`` to ``Wrapper.__init__``, which the
released ``Timeout(DMControlWrapper(...))`` fails. While a released env is built, :func:`_wrapper_accepts_any_env`
lets ``Wrapper.__init__`` take a non-``Env`` (everything else it does is unchanged). The released top-level
``envs.make_env`` is not called: under gymnasium 1.x it also fails on ``gym.logger.set_level`` and on reading
``env.max_episode_steps`` through a wrapper (attribute forwarding was removed); for one DMControl task it is exactly
``TensorWrapper(envs.dmcontrol.make_env(cfg))`` with ``cfg.episode_length`` = the ``Timeout``'s
``max_episode_steps``, which is what :func:`_make_released` builds and reads.

Not compared, and why:
* the released code registers 28 custom DMControl tasks; the 17 in ``RELEASED_ONLY_CUSTOM`` (walker/cheetah/hopper
  yoga and flip variants, reacher-four-*, fish-obstacles) are not tasks of the paper (shared/paper/TASKS.md lists
  the 11 custom ones we register) and our registry does not hold them, so there is nothing of ours to compare;
  ``test_released_tasks_missing_here_are_the_documented_ones`` fails if that set changes (e.g. we add one) so the
  list above and the comparison are kept up to date;
* pixel observations (``obs=rgb``) are not compared here: rendering is the subject of FIDELITY.md D5 and its tests.

Importing the released tasks registers them in dm_control's global suite registry (``suite.ALL_TASKS`` and each
domain's ``SUITE``); the module fixture puts that registry back as it was afterwards.
"""

from __future__ import annotations

import types
from collections.abc import Iterator
from contextlib import contextmanager

import gymnasium as gym
import mujoco
import numpy as np
import pytest
import torch

from envs import make_env, task_names
from envs.registry import DMC_CUSTOM, DMCONTROL, get_task
from tests.differential.released import cpu_copy, import_released, require_released

ATOL = 1e-5
"""Absolute tolerance on observations and rewards (the released rewards are float32, ours float64)."""

STANDARD_TASKS = ("cartpole-balance", "walker-walk", "cheetah-run")
COMPARED_TASKS = DMC_CUSTOM + STANDARD_TASKS

RELEASED_ONLY_CUSTOM = frozenset({
    "walker-arabesque", "walker-lie-down", "walker-legs-up", "walker-headstand", "walker-flip", "walker-backflip",
    "cheetah-stand-front", "cheetah-stand-back", "cheetah-lie-down", "cheetah-legs-up", "cheetah-flip",
    "cheetah-flip-backwards", "hopper-flip", "hopper-flip-backwards", "reacher-four-easy", "reacher-four-hard",
    "fish-obstacles",
})
"""Custom tasks the released code registers and our registry does not hold (not tasks of the paper)."""

STATE = mujoco.mjtState.mjSTATE_INTEGRATION
"""The full MuJoCo state a step depends on: time, qpos, qvel, act, warm start, controls, mocap, ..."""

START_DRAWN_MODEL_FIELDS: dict[str, tuple[tuple[str, str], ...]] = {"reacher": (("geom_pos", "target"),)}
"""Per dm_control domain, the model fields (field, element name) an episode start draws: reacher moves its target."""

RELEASED_SEED, OUR_SEED, ACTION_SEED = 1, 2, 0


def _target_on_finger(physics) -> None:
    physics.named.model.geom_pos["target", ["x", "y"]] = physics.named.data.geom_xpos["finger", ["x", "y"]]


def _moving_backwards(physics) -> None:
    physics.named.data.qvel["rootx"] = -1.5


REWARDING_STARTS = {
    "reacher-three-easy": _target_on_finger,
    "reacher-three-hard": _target_on_finger,
    "hopper-hop-backwards": _moving_backwards,
}
"""Changes to the released env's start (before it is copied into ours) for the tasks whose reward random actions
from a drawn start never move off 0: the sparse reachers (target put on the finger: reward 1 until the arm leaves)
and hopper-hop-backwards (the hopper given -1.5 m/s: positive until it falls). Each episode must see at least two
distinct rewards, so that every reward function is exercised."""


# ------------------------------------------------------------------------------------------------ the released side

@contextmanager
def _dm_control_registry_restored() -> Iterator[None]:
    """Put dm_control's suite registry back afterwards: the released tasks add themselves to it on import (and a
    second import, e.g. from another test module, would otherwise fail on the names already taken)."""
    from dm_control import suite

    all_tasks, by_domain = suite.ALL_TASKS, suite.TASKS_BY_DOMAIN
    # A domain's SUITE (dm_control.utils.containers.TaggedTasks) keeps its tasks in two tables: by name, by tag.
    tables = {name: (dict(domain.SUITE._tasks), {tag: dict(tasks) for tag, tasks in domain.SUITE._tags.items()})
              for name, domain in suite._DOMAINS.items()}
    try:
        yield
    finally:
        suite.ALL_TASKS, suite.TASKS_BY_DOMAIN = all_tasks, by_domain
        for name, domain in suite._DOMAINS.items():
            tasks, tags = tables[name]
            domain.SUITE._tasks.clear()
            domain.SUITE._tasks.update(tasks)
            domain.SUITE._tags.clear()
            domain.SUITE._tags.update(tags)


@pytest.fixture(scope="module")
def released_envs(tmp_path_factory) -> Iterator[types.SimpleNamespace]:
    """The released ``envs.dmcontrol`` and ``envs.wrappers.tensor`` modules (CPU copy, imported beside ours)."""
    require_released()
    root = cpu_copy("mbdpo", tmp_path_factory.mktemp("released-envs"))
    with _dm_control_registry_restored():
        yield import_released(root, ["envs.dmcontrol", "envs.wrappers.tensor"])


_PLACEHOLDER_ENV = gym.Env()


@contextmanager
def _wrapper_accepts_any_env() -> Iterator[None]:
    """gymnasium < 1.0's ``Wrapper.__init__`` accepted any object; 1.x asserts a ``gymnasium.Env`` (module
    docstring). Within this context it initialises as usual (on a placeholder Env) and then wraps what it was given."""
    original = gym.Wrapper.__init__

    def init(self, env) -> None:
        original(self, env if isinstance(env, gym.Env) else _PLACEHOLDER_ENV)
        self.env = env

    gym.Wrapper.__init__ = init
    try:
        yield
    finally:
        gym.Wrapper.__init__ = original


def _make_released(released: types.SimpleNamespace, task: str, seed: int) -> tuple[gym.Wrapper, int]:
    """The released env an agent of the released trainer steps, and its ``cfg.episode_length``."""
    cfg = types.SimpleNamespace(task=task, obs="state", seed=seed, multitask=False)
    with _wrapper_accepts_any_env():
        timeout = released.dmcontrol.make_env(cfg)
        env = released.tensor.TensorWrapper(timeout)
    return env, timeout.max_episode_steps


def _released_physics(env: gym.Wrapper):
    # TensorWrapper -> Timeout -> DMControlWrapper, whose ``unwrapped`` is dm_control's action_scale wrapper; that
    # forwards ``physics`` / ``task`` / ``control_timestep`` to the control.Environment.
    return env.unwrapped.physics


def _released_control_timestep(env: gym.Wrapper) -> float:
    return float(env.unwrapped.control_timestep())


# ---------------------------------------------------------------------------------------------------- our side

def _make_ours(task: str, seed: int) -> gym.Env:
    return make_env(task, seed=seed)


def _domain(task: str) -> str:
    """The task's domain as START_DRAWN_MODEL_FIELDS names it (its name's first part)."""
    return task.split("-")[0]


def _model_fields(physics, task: str) -> np.ndarray:
    """The model fields the task's episode start draws, concatenated (empty when it draws none)."""
    fields = [getattr(physics.named.model, field)[name]
              for field, name in START_DRAWN_MODEL_FIELDS.get(_domain(task), ())]
    return np.concatenate(fields) if fields else np.zeros(0)


def _copy_state(source, target, task: str) -> None:
    """Copy the full integration state and the start-drawn model fields from physics ``source`` to ``target``."""
    target.set_state(source.get_state(STATE), STATE)
    for field, name in START_DRAWN_MODEL_FIELDS.get(_domain(task), ()):
        getattr(target.named.model, field)[name] = getattr(source.named.model, field)[name]
    target.forward()


def _max_abs(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)), initial=0.0))


# -------------------------------------------------------------------------------------------------------- tests

def test_released_tasks_missing_here_are_the_documented_ones(released_envs):
    """Every custom task of ours has a released counterpart; the released ones we lack are exactly those listed."""
    from dm_control import suite

    released_custom = {f"{dict(ball_in_cup='cup').get(domain, domain)}-{name.replace('_', '-')}"
                       for domain, name in suite._get_tasks("custom")}
    ours = set(task_names(suite=DMCONTROL))
    assert set(DMC_CUSTOM) <= released_custom, f"no released counterpart: {sorted(set(DMC_CUSTOM) - released_custom)}"
    assert released_custom - ours == RELEASED_ONLY_CUSTOM


@pytest.mark.parametrize("task", COMPARED_TASKS)
def test_same_seed_draws_the_same_start_without_a_step(released_envs, task: str):
    """Built with the same seed, both draw the same start in two consecutive episodes; no step is taken at reset."""
    released, _ = _make_released(released_envs, task, seed=RELEASED_SEED)
    ours = _make_ours(task, seed=RELEASED_SEED)
    released_physics, our_physics = _released_physics(released), ours.unwrapped.physics
    worst_obs = worst_state = 0.0
    for episode in range(2):
        released_obs = released.reset().numpy()
        our_obs, _ = ours.reset()
        clocks = (released_physics.data.time, our_physics.data.time)
        assert clocks == (0.0, 0.0), f"episode {episode}: a step was taken at reset (clocks {clocks})"
        assert our_obs.dtype == np.float32 and our_obs.shape == tuple(released_obs.shape)
        worst_obs = max(worst_obs, _max_abs(released_obs, our_obs))
        released_state, our_state = released_physics.get_state(STATE), our_physics.get_state(STATE)
        assert released_state.shape == our_state.shape
        worst_state = max(worst_state, _max_abs(released_state, our_state),
                          _max_abs(_model_fields(released_physics, task), _model_fields(our_physics, task)))
        np.testing.assert_allclose(our_obs, released_obs, rtol=0, atol=ATOL, err_msg=f"{task} episode {episode}")
        np.testing.assert_allclose(our_state, released_state, rtol=0, atol=ATOL, err_msg=f"{task} episode {episode}")
        np.testing.assert_allclose(_model_fields(our_physics, task), _model_fields(released_physics, task),
                                   rtol=0, atol=ATOL, err_msg=f"{task} episode {episode}: start-drawn model fields")
    print(f"{task}: start max|obs diff| {worst_obs:.3g}, max|state diff| {worst_state:.3g}")


@pytest.mark.parametrize("task", COMPARED_TASKS)
def test_same_actions_from_the_same_state_give_the_same_episode(released_envs, task: str):
    """From the same physics state, the same actions give the same observations, rewards, clock and episode end."""
    spec = get_task(task)
    released, released_episode_length = _make_released(released_envs, task, seed=RELEASED_SEED)
    ours = _make_ours(task, seed=OUR_SEED)
    assert released_episode_length == spec.episode_length == 500
    assert ours.action_space.shape == released.action_space.shape
    assert ours.observation_space.shape == released.observation_space.shape
    np.testing.assert_array_equal(released.action_space.low, -1.0)
    np.testing.assert_array_equal(released.action_space.high, 1.0)
    np.testing.assert_array_equal(ours.action_space.low, -1.0)
    np.testing.assert_array_equal(ours.action_space.high, 1.0)

    released.reset()
    ours.reset()
    released_physics, our_physics = _released_physics(released), ours.unwrapped.physics
    assert not np.array_equal(released_physics.get_state(STATE), our_physics.get_state(STATE)), \
        "the two seeds drew the same start: the state copy below would prove nothing"
    if task in REWARDING_STARTS:
        with released_physics.reset_context():  # forward() on exit
            REWARDING_STARTS[task](released_physics)
    _copy_state(released_physics, our_physics, task)
    np.testing.assert_array_equal(our_physics.get_state(STATE), released_physics.get_state(STATE))

    control_timestep = _released_control_timestep(released)
    assert ours.unwrapped.dm_env.control_timestep() == pytest.approx(control_timestep, abs=1e-12)
    rng = np.random.default_rng(ACTION_SEED)
    worst_obs = worst_reward = 0.0
    rewards: list[float] = []
    released_end = our_end = None
    for step in range(1, spec.episode_length + 1):
        action = rng.uniform(-1.0, 1.0, size=ours.action_space.shape).astype(np.float32)
        released_obs, released_reward, released_done, _ = released.step(torch.from_numpy(action.copy()))
        our_obs, our_reward, terminated, truncated, _ = ours.step(action.copy())

        worst_obs = max(worst_obs, _max_abs(released_obs.numpy(), our_obs))
        worst_reward = max(worst_reward, abs(float(released_reward) - our_reward))
        rewards.append(our_reward)
        np.testing.assert_allclose(our_obs, released_obs.numpy(), rtol=0, atol=ATOL, err_msg=f"{task} step {step}")
        assert our_reward == pytest.approx(float(released_reward), rel=0, abs=ATOL), f"{task} step {step}"
        # Action repeat: both clocks read step * repeat control steps.
        expected_time = step * spec.action_repeat * control_timestep
        assert released_physics.data.time == pytest.approx(expected_time, abs=1e-9), f"{task} step {step}"
        assert our_physics.data.time == pytest.approx(expected_time, abs=1e-9), f"{task} step {step}"
        assert not terminated
        if released_done and released_end is None:
            released_end = step
        if truncated and our_end is None:
            our_end = step
        if released_end is not None or our_end is not None:
            break
    assert released_end == our_end == spec.episode_length, f"episode ends: released {released_end}, ours {our_end}"
    assert spec.action_repeat == 2
    assert len(set(rewards)) > 1, f"{task}: the reward was {rewards[0]} at every step; the comparison exercised nothing"
    print(f"{task}: {our_end} steps, max|obs diff| {worst_obs:.3g}, max|reward diff| {worst_reward:.3g}, "
          f"rewards in [{min(rewards):.3g}, {max(rewards):.3g}] ({np.count_nonzero(rewards)} nonzero)")
