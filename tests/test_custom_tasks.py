"""Tests for envs/dmcontrol/custom.py: the 11 custom DMControl tasks."""

from __future__ import annotations

import numpy as np
import pytest
from dm_control import suite
from dm_control.utils import rewards

from envs.dmcontrol import custom

EXPECTED_TASKS = (
    "walker-walk-backwards", "walker-run-backwards", "cheetah-run-backwards",
    "cheetah-run-front", "cheetah-run-back", "cheetah-jump",
    "hopper-hop-backwards", "reacher-three-easy", "reacher-three-hard",
    "cup-spin", "pendulum-spin",
)

# Cheetah poses found by optimising static kinematics over pitch and joint
# angles (degrees, in the order rooty, bthigh, bshin, bfoot, fthigh, fshin,
# ffoot): balanced on the front leg with the back foot high, and vice versa.
FRONT_STAND_DEG = (68, 35, -45, -60, -57, 24, -3)
BACK_STAND_DEG = (-68, 60, -45, 50, 0, 50, 28)


def _set_state(physics, qpos: dict | None = None, qvel: dict | None = None):
    """Zero the state, then set named joints; forward() runs on exit."""
    with physics.reset_context():
        physics.data.qpos[:] = 0.0
        physics.data.qvel[:] = 0.0
        for name, value in (qpos or {}).items():
            physics.named.data.qpos[name] = value
        for name, value in (qvel or {}).items():
            physics.named.data.qvel[name] = value


def _reward(env, qpos: dict | None = None, qvel: dict | None = None) -> float:
    _set_state(env.physics, qpos, qvel)
    return env.task.get_reward(env.physics)


def _lowest_point(physics) -> float:
    """Lowest z over the cheetah's capsules (excluding the ground plane)."""
    model, data = physics.model, physics.data
    lowest = np.inf
    for g in range(model.ngeom):
        if physics.model.id2name(g, "geom") == "ground":
            continue
        radius, half_length = model.geom_size[g][:2]
        axis_z = data.geom_xmat[g].reshape(3, 3)[2, 2]
        for sign in (-1.0, 1.0):
            lowest = min(lowest, data.geom_xpos[g][2] + sign * half_length * axis_z - radius)
    return lowest


def _up_tol(height: float) -> float:
    return rewards.tolerance(height, (1.2, np.inf), margin=0.6)


def _cheetah_pose(physics, degrees) -> None:
    """Put the cheetah in `degrees` pose, at rest, touching the ground."""
    joints = ("rooty", "bthigh", "bshin", "bfoot", "fthigh", "fshin", "ffoot")
    qpos = dict(zip(joints, np.deg2rad(degrees)))
    _set_state(physics, qpos)
    qpos["rootz"] = -_lowest_point(physics)
    _set_state(physics, qpos)
    assert abs(_lowest_point(physics)) < 1e-9


# --------------------------------------------------------------------------
# Generic behaviour
# --------------------------------------------------------------------------


def test_task_names_and_order():
    assert custom.CUSTOM_TASKS == EXPECTED_TASKS


def test_unknown_name_is_rejected_with_valid_names():
    with pytest.raises((KeyError, ValueError)) as info:
        custom.load("walker-fly")
    message = str(info.value)
    assert "walker-fly" in message
    assert all(name in message for name in EXPECTED_TASKS)


@pytest.mark.parametrize("name", EXPECTED_TASKS)
def test_full_episode(name):
    env = custom.load(name, random=0)
    obs_spec = env.observation_spec()
    action_spec = env.action_spec()
    assert np.all(np.isfinite(action_spec.minimum))
    assert np.all(np.isfinite(action_spec.maximum))
    rng = np.random.default_rng(0)
    for _ in range(2):  # a second episode checks that reset really resets
        ts = env.reset()
        assert ts.first()
        assert list(ts.observation) == list(obs_spec)
        steps = 0
        while True:
            action = rng.uniform(action_spec.minimum, action_spec.maximum)
            ts = env.step(action)
            steps += 1
            assert 0.0 <= ts.reward <= 1.0, (name, steps, ts.reward)
            for key, value in ts.observation.items():
                assert np.shape(value) == obs_spec[key].shape, key
                assert np.all(np.isfinite(value)), (name, key, steps)
            if ts.last():
                break
            assert steps < 1000, f"{name} did not end at step 1000"
        assert steps == 1000
        assert ts.discount == 1.0  # time-limit truncation, not termination


@pytest.mark.parametrize("name", EXPECTED_TASKS)
def test_reward_bounded_in_random_states(name):
    env = custom.load(name, random=1)
    env.reset()
    physics = env.physics
    rng = np.random.default_rng(1)
    for _ in range(200):
        with physics.reset_context():
            physics.data.qpos[:] = rng.normal(0.0, 1.5, physics.model.nq)
            physics.data.qvel[:] = rng.normal(0.0, 10.0, physics.model.nv)
        reward = env.task.get_reward(physics)
        assert isinstance(reward, float)
        assert 0.0 <= reward <= 1.0, (name, reward)


@pytest.mark.parametrize("name", EXPECTED_TASKS)
def test_seeding_is_deterministic(name):
    first = custom.load(name, random=7).reset().observation
    second = custom.load(name, random=7).reset().observation
    for key in first:
        np.testing.assert_array_equal(first[key], second[key])
    # Every task's start depends on the seed (cup-spin's too: FIDELITY.md D6).
    other = custom.load(name, random=8).reset().observation
    assert any(not np.array_equal(first[k], other[k]) for k in first)


def test_environment_kwargs_are_forwarded():
    env = custom.load("pendulum-spin", random=0,
                      environment_kwargs={"flat_observation": True, "time_limit": 1.0})
    ts = env.reset()
    assert list(ts.observation) == ["observations"]
    steps = 0
    while not ts.last():
        ts = env.step(np.zeros(1))
        steps += 1
    assert steps == 50


# --------------------------------------------------------------------------
# Walker
# --------------------------------------------------------------------------


def test_walker_walk_backwards_prefers_backward_velocity():
    env = custom.load("walker-walk-backwards", random=0)
    backward = _reward(env, qvel={"rootx": -1.5})
    forward = _reward(env, qvel={"rootx": 1.5})
    assert backward == pytest.approx(1.0)  # upright, tall and fast enough
    assert forward == pytest.approx(1.0 / 6.0)
    assert backward > forward
    # Halfway into the margin: move = 0.75 -> reward = (5 * 0.75 + 1) / 6.
    assert _reward(env, qvel={"rootx": -0.75}) == pytest.approx((5 * 0.75 + 1) / 6)


@pytest.mark.parametrize("rootz", [0.0, -0.4])
def test_walker_standing_still_earns_stand_part_only(rootz):
    env = custom.load("walker-walk-backwards", random=0)
    _set_state(env.physics, qpos={"rootz": rootz})
    stand = env.task.stand_reward(env.physics)
    height = env.physics.torso_height()
    expected_stand = (3 * rewards.tolerance(height, (1.2, np.inf), margin=0.6) + 1) / 4
    assert stand == pytest.approx(expected_stand)
    assert env.task.get_reward(env.physics) == pytest.approx(stand / 6)
    if rootz < 0:
        assert 0.0 < stand < 1.0  # crouched: partial stand reward


def test_walker_run_backwards_needs_run_speed():
    env = custom.load("walker-run-backwards", random=0)
    assert _reward(env, qvel={"rootx": -8.0}) == pytest.approx(1.0)
    assert _reward(env, qvel={"rootx": -1.0}) < 0.5
    assert _reward(env, qvel={"rootx": 8.0}) == pytest.approx(1.0 / 6.0)


# --------------------------------------------------------------------------
# Cheetah
# --------------------------------------------------------------------------


def test_cheetah_run_backwards_reward():
    env = custom.load("cheetah-run-backwards", random=0)
    assert _reward(env, qvel={"rootx": -8.0}) == pytest.approx(1.0)
    assert _reward(env, qvel={"rootx": -12.0}) == pytest.approx(1.0)
    assert _reward(env, qvel={"rootx": -4.0}) == pytest.approx(0.5)
    assert _reward(env, qvel={"rootx": 0.0}) == 0.0
    assert _reward(env, qvel={"rootx": 5.0}) == 0.0


def test_cheetah_model_change_is_cosmetic():
    """The re-centred floor must not change dynamics w.r.t. dm_control's cheetah."""
    ours = custom.load("cheetah-run-backwards", random=3)
    stock = suite.load("cheetah", "run", task_kwargs={"random": 3})
    ours.reset()
    stock.reset()
    np.testing.assert_array_equal(ours.physics.data.qpos, stock.physics.data.qpos)
    rng = np.random.default_rng(3)
    for _ in range(100):
        action = rng.uniform(-1, 1, 6)
        ours.step(action)
        stock.step(action)
    np.testing.assert_allclose(ours.physics.data.qpos, stock.physics.data.qpos)
    assert ours.physics.named.model.geom_pos["ground", "x"] == 0.0


@pytest.mark.parametrize("name, good, bad", [
    ("cheetah-run-front", FRONT_STAND_DEG, BACK_STAND_DEG),
    ("cheetah-run-back", BACK_STAND_DEG, FRONT_STAND_DEG),
])
def test_cheetah_run_on_one_leg(name, good, bad):
    env = custom.load(name, random=0)
    physics = env.physics
    _set_state(physics)  # flat, standing on both legs
    flat = env.task.get_reward(physics)
    _cheetah_pose(physics, good)
    raised = env.task.get_reward(physics)
    up = env.task.up_reward(physics)
    raised_foot = "bfoot" if name == "cheetah-run-front" else "ffoot"
    torso_up = _up_tol(physics.named.data.xpos["torso", "z"])
    foot_up = _up_tol(physics.named.data.xpos[raised_foot, "z"])
    assert up == pytest.approx((3 * foot_up + 2 * torso_up) / 5)
    assert up > 0.95
    assert raised == pytest.approx(up / 6)  # standing still: move = 0
    _cheetah_pose(physics, bad)
    wrong_leg = env.task.get_reward(physics)
    assert raised > 1.5 * flat
    assert raised > 1.5 * wrong_leg
    # Running at the target speed in the good pose earns the full `up` reward.
    _cheetah_pose(physics, good)
    qpos = physics.data.qpos.copy()
    with physics.reset_context():
        physics.data.qpos[:] = qpos
        physics.named.data.qvel["rootx"] = 6.0
    assert env.task.get_reward(physics) == pytest.approx(up)


def test_cheetah_jump_rewards_rearing_up_on_either_leg():
    env = custom.load("cheetah-jump", random=0)
    physics = env.physics
    _set_state(physics)
    flat = env.task.get_reward(physics)
    _cheetah_pose(physics, FRONT_STAND_DEG)
    front = env.task.get_reward(physics)
    _cheetah_pose(physics, BACK_STAND_DEG)
    back = env.task.get_reward(physics)
    for reward in (flat, front, back):
        assert 0.0 <= reward <= 1.0
    # Standing still and fully reared on one leg: that half scores 1.
    assert front > 0.5 and back > 0.5
    assert front > flat and back > flat
    torso_z = physics.named.data.xpos["torso", "z"]
    halves = [_up_tol((torso_z + physics.named.data.xpos[foot, "z"]) / 2)
              for foot in ("bfoot", "ffoot")]
    assert back == pytest.approx((5 * np.mean(halves) + 1) / 6)
    # Drifting costs the speed term (1/6 of each half); at 0.75 m/s it is 0.5.
    qpos = physics.data.qpos.copy()
    with physics.reset_context():
        physics.data.qpos[:] = qpos
        physics.named.data.qvel["rootx"] = 0.75
    assert env.task.get_reward(physics) == pytest.approx(back - 0.5 / 6.0)


# --------------------------------------------------------------------------
# Hopper
# --------------------------------------------------------------------------


def test_hopper_hop_backwards_reward():
    env = custom.load("hopper-hop-backwards", random=0)
    # Default pose is upright with height 0.98, inside (0.6, 2).
    assert _reward(env, qvel={"rootx": -1.0}) == pytest.approx(1.0)
    assert _reward(env, qvel={"rootx": -3.0}) == pytest.approx(1.0)
    assert _reward(env, qvel={"rootx": -0.75}) == pytest.approx(0.75)
    assert _reward(env, qvel={"rootx": 0.0}) == 0.0
    assert _reward(env, qvel={"rootx": 1.0}) == 0.0
    # Lying flat (torso level with the foot): standing term ~0 even when moving.
    assert _reward(env, qpos={"rooty": np.pi / 2}, qvel={"rootx": -2.0}) < 0.1


# --------------------------------------------------------------------------
# Three-link reacher
# --------------------------------------------------------------------------


def test_reacher_three_model():
    env = custom.load("reacher-three-easy", random=0)
    model = env.physics.model
    assert model.njnt == 3
    assert all(t == 3 for t in model.jnt_type)  # mjJNT_HINGE
    assert model.nu == 3
    assert env.action_spec().shape == (3,)
    obs = env.reset().observation
    assert list(obs) == ["position", "to_target", "velocity"]
    assert [obs[k].shape for k in obs] == [(3,), (2,), (3,)]
    np.testing.assert_allclose(obs["to_target"], env.physics.finger_to_target())
    # Fully stretched reach covers dm_control's farthest target (0.20 m).
    _set_state(env.physics)
    assert np.linalg.norm(env.physics.named.data.geom_xpos["finger", :2]) >= 0.2


@pytest.mark.parametrize("name, radius", [
    ("reacher-three-easy", 0.05), ("reacher-three-hard", 0.015)])
def test_reacher_three_sparse_reward(name, radius):
    env = custom.load(name, random=0)
    env.reset()
    physics = env.physics
    assert physics.named.model.geom_size["target", 0] == pytest.approx(radius)
    finger = physics.named.data.geom_xpos["finger", :2].copy()

    def reward_with_target_at(offset):
        physics.named.model.geom_pos["target", :2] = finger + np.asarray(offset)
        physics.forward()
        return env.task.get_reward(physics)

    assert reward_with_target_at([0.0, 0.0]) == 1.0
    # 3 cm: within 0.05 + 0.01 (easy) but not within 0.015 + 0.01 (hard).
    assert reward_with_target_at([0.03, 0.0]) == (1.0 if radius == 0.05 else 0.0)
    assert reward_with_target_at([0.0, 0.2]) == 0.0


def test_reacher_three_randomises_target_within_reach():
    env = custom.load("reacher-three-easy", random=0)
    distances = []
    for _ in range(30):
        env.reset()
        distances.append(np.linalg.norm(env.physics.named.model.geom_pos["target", :2]))
    assert 0.05 <= min(distances) and max(distances) <= 0.2
    assert np.std(distances) > 0.01


def test_reacher_three_has_the_released_geometry():
    """FIDELITY.md D6: links 0.09 / 0.09 / 0.10 m, finger at 0.09 m, reach 0.27 m, +-80 degree limits."""
    env = custom.load("reacher-three-easy", random=0)
    named = env.physics.named.model
    # Joint origins along the arm (body positions in their parent's frame).
    np.testing.assert_allclose(named.body_pos["forearm"], [0.09, 0.0, 0.0])
    np.testing.assert_allclose(named.body_pos["hand"], [0.09, 0.0, 0.0])
    np.testing.assert_allclose(named.body_pos["finger"], [0.09, 0.0, 0.0])
    # Capsule half-lengths (geom_size[1]): the links are 0.09, 0.09 and 0.10 m long.
    half_lengths = [named.geom_size[g, 1] for g in ("upper_arm", "forearm", "hand")]
    np.testing.assert_allclose(half_lengths, [0.045, 0.045, 0.05])
    # Base joint free; middle and last joints limited to +-80 degrees.
    assert not named.jnt_limited["shoulder"]
    for joint in ("elbow", "wrist"):
        assert named.jnt_limited[joint]
        np.testing.assert_allclose(named.jnt_range[joint], np.deg2rad([-80.0, 80.0]))
    # Stretched out, the finger is 0.27 m from the base.
    _set_state(env.physics)
    assert np.linalg.norm(env.physics.named.data.geom_xpos["finger", :2]) == pytest.approx(0.27)
    # Start angles are drawn within the limits (dm_control's randomiser), not at one pose.
    starts = []
    for _ in range(50):
        env.reset()
        starts.append(env.physics.named.data.qpos[["elbow", "wrist"]].copy())
    starts = np.array(starts)
    assert np.all(np.abs(starts) <= np.deg2rad(80.0) + 1e-9)
    assert np.all(starts.std(axis=0) > 0.3)


# --------------------------------------------------------------------------
# Cup spin
# --------------------------------------------------------------------------


def test_cup_spin_start_is_rejection_sampled_inside_the_cup():
    """FIDELITY.md D6: uniform draws until the ball is in the cup without penetration, not one fixed spot."""
    positions, in_cup = [], []
    for seed in range(50):
        env = custom.load("cup-spin", random=seed)
        env.reset()
        physics = env.physics
        assert physics.data.ncon == 0, seed  # nothing penetrates at the start
        np.testing.assert_array_equal(physics.named.data.qvel[["ball_x", "ball_z"]], 0.0)
        positions.append(physics.named.data.qpos[["ball_x", "ball_z"]].copy())
        in_cup.append(bool(physics.in_target()))
    positions, in_cup = np.array(positions), np.array(in_cup)
    assert 38 <= in_cup.sum() <= 50  # 90% in the cup, 10% anywhere
    inside = positions[in_cup]
    assert len({tuple(np.round(p, 6)) for p in inside}) == len(inside)  # all distinct
    # The cup's interior admits ball centres within ~1.7 cm of its axis and a ~4 cm band of height.
    assert inside[:, 0].std() > 0.005 and inside[:, 1].std() > 0.005
    assert np.all(np.abs(inside[:, 0]) < 0.025) and np.all(np.abs(inside[:, 1] - 0.35) < 0.025)


def test_cup_spin_starts_with_ball_in_cup_most_of_the_time():
    env = custom.load("cup-spin", random=0)
    in_cup = []
    for _ in range(100):
        env.reset()
        in_cup.append(env.physics.in_target())
    assert 80 <= sum(in_cup) <= 97
    # The in-cup start is at rest: idle steps keep the ball in (reward 0).
    for _ in range(20):
        env.reset()
        if env.physics.in_target():
            break
    for _ in range(50):
        ts = env.step(np.zeros(2))
        assert ts.reward == 0.0
    assert env.physics.in_target() == 1.0


def test_cup_spin_reward():
    env = custom.load("cup-spin", random=0)
    env.reset()
    # Ball at the cup's centre, even moving fast: in cup -> 0.
    assert _reward(env, qpos={"ball_z": 0.35}, qvel={"ball_x": 8.0}) == 0.0
    # Ball below and to the side of the cup, moving fast: positive.
    outside_fast = _reward(env, qpos={"ball_x": 0.2, "ball_z": 0.1},
                           qvel={"ball_x": 6.0, "ball_z": 3.0})
    outside_still = _reward(env, qpos={"ball_x": 0.2, "ball_z": 0.1})
    assert env.physics.in_target() == 0.0
    assert outside_fast > outside_still > 0.0
    # Speed >= 6 saturates its term (weight 2/3).
    distance = np.linalg.norm(env.physics.ball_to_target())
    far = rewards.tolerance(distance, (0.5, np.inf), margin=0.25,
                                   value_at_margin=0.5, sigmoid="linear")
    assert outside_fast == pytest.approx((far + 2.0) / 3.0)


# --------------------------------------------------------------------------
# Pendulum spin
# --------------------------------------------------------------------------


def test_pendulum_spin_reward():
    env = custom.load("pendulum-spin", random=0)
    assert _reward(env, qvel={"hinge": 9.0}) == pytest.approx(1.0)
    assert _reward(env, qvel={"hinge": -12.0}) == pytest.approx(1.0)
    assert _reward(env, qvel={"hinge": 6.75}) == pytest.approx(0.75)
    assert _reward(env, qvel={"hinge": 0.0}) == 0.0
    assert _reward(env, qvel={"hinge": 0.0}) < _reward(env, qvel={"hinge": 9.0})
