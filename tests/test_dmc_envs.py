"""Every DMControl entry (39 state + 10 pixel) creates, resets and steps with the right shapes and length."""

import numpy as np
import pytest

from envs import get_task, make_env, task_names
from envs.registry import DMCONTROL

DMC_TASKS = task_names(suite=DMCONTROL)


def test_all_49_dmcontrol_entries_are_tested():
    assert len(DMC_TASKS) == 49


@pytest.mark.parametrize("task", DMC_TASKS)
def test_dmcontrol_entry_runs_a_full_episode(task):
    spec = get_task(task)
    env = make_env(task, seed=0)
    obs, info = env.reset(seed=0)
    assert env.action_space.dtype == np.float32
    assert np.all(env.action_space.low == -1) and np.all(env.action_space.high == 1)
    if spec.obs == "rgb":
        assert obs.shape == (9, 64, 64) and obs.dtype == np.uint8
        assert env.observation_space.shape == (9, 64, 64)
    else:
        assert obs.ndim == 1 and obs.dtype == np.float32 and obs.shape == env.observation_space.shape
    rng = np.random.default_rng(0)
    steps, total, done = 0, 0.0, False
    while not done:
        obs, reward, terminated, truncated, info = env.step(rng.uniform(-1, 1, env.action_space.shape))
        assert obs.shape == env.observation_space.shape and obs.dtype == env.observation_space.dtype
        assert 0.0 <= reward <= spec.action_repeat + 1e-6  # per-sim-step rewards lie in [0, 1]
        total += reward
        steps += 1
        done = terminated or truncated
    assert steps == spec.episode_length == 500 and not terminated
    assert np.all(np.isfinite(obs))
    env.close()


def test_same_seed_same_episode_and_seeds_differ():
    def rollout(seed):
        env = make_env("walker-walk", seed=seed)
        first, _ = env.reset(seed=seed)
        actions = np.random.default_rng(0).uniform(-1, 1, (20, *env.action_space.shape))
        rewards = [env.step(a)[1] for a in actions]
        return first, rewards

    a, b, c = rollout(5), rollout(5), rollout(6)
    assert np.array_equal(a[0], b[0]) and a[1] == b[1]
    assert not np.array_equal(a[0], c[0])


def test_action_repeat_sums_rewards():
    env = make_env("cartpole-balance", seed=0)
    env.reset(seed=1)
    raw = env.unwrapped.dm_env
    state = raw.physics.get_state().copy()
    action = np.array([0.3], dtype=np.float32)
    _, reward, *_ = env.step(action)
    raw.physics.set_state(state)
    expected = sum(raw.step(action.astype(np.float64)).reward for _ in range(2))
    assert reward == pytest.approx(expected)


def test_pixel_frames_stack_in_time_order():
    env = make_env("cartpole-swingup", seed=0, obs="rgb")
    obs0, _ = env.reset(seed=0)
    assert np.array_equal(obs0[0:3], obs0[6:9])  # the first frame fills the stack at reset
    obs1, *_ = env.step(np.ones(1, dtype=np.float32))
    assert np.array_equal(obs1[0:3], obs0[6:9])  # the oldest frame drops out, the newest comes last
    assert obs1[6:9].std() > 0


def test_pixels_render_with_shadows_by_default_as_released():
    """FIDELITY.md D5: dm_control's default rendering (shadows on) unless shadows=False is asked for."""
    from dm_control import suite

    default = make_env("reacher-easy", seed=0, obs="rgb")
    no_shadows = make_env("reacher-easy", seed=0, obs="rgb", shadows=False)
    assert default.unwrapped.physics.model.vis.quality.shadowsize > 0
    assert no_shadows.unwrapped.physics.model.vis.quality.shadowsize == 0
    frame, _ = default.reset(seed=0)
    frame_off, _ = no_shadows.reset(seed=0)
    assert not np.array_equal(frame, frame_off)  # same state, the shadow is visible
    # The default frame is what the released code rendered: dm_control's physics at its own settings
    # (640x480 buffer, shadows on), same state, same camera.
    raw = suite.load("reacher", "easy", task_kwargs={"random": 0})
    raw.reset()
    raw.physics.set_state(default.unwrapped.physics.get_state())
    raw.physics.named.model.geom_pos["target"] = default.unwrapped.physics.named.model.geom_pos["target"]
    raw.physics.forward()
    expected = raw.physics.render(64, 64, camera_id=0).transpose(2, 0, 1)
    np.testing.assert_array_equal(frame[-3:], expected)
    for env in (default, no_shadows):
        env.close()


def test_shadows_must_be_a_bool():
    with pytest.raises(TypeError, match="shadows must be True or False, got 'no'"):
        make_env("reacher-easy", seed=0, obs="rgb", shadows="no")
