"""The 11 custom DeepMind Control tasks used by the TD-MPC2 / MBDPO papers.

Every task reuses a dm_control suite domain (its Physics class, its MJCF model
and, where the task only changes the objective, its Task class) and changes the
reward, sometimes the initial state, and in one case the model:

===================== ============ ==========================================
task                  domain       change with respect to dm_control
===================== ============ ==========================================
walker-walk-backwards walker       walk target speed mirrored (-1 m/s)
walker-run-backwards  walker       run target speed mirrored (-8 m/s)
cheetah-run-backwards cheetah      run backwards at <= -8 m/s
cheetah-run-front     cheetah      run at >= 6 m/s on the front leg only
cheetah-run-back      cheetah      run at >= 6 m/s on the back leg only
cheetah-jump          cheetah      rear up on either leg while standing still
hopper-hop-backwards  hopper       hop target speed mirrored (-1 m/s)
reacher-three-easy    new model    three-link reacher, target radius 0.05
reacher-three-hard    new model    three-link reacher, target radius 0.015
cup-spin              ball_in_cup  ball starts (90%) in the cup; swing it out, fast
pendulum-spin         pendulum     spin at >= 9 rad/s in either direction
===================== ============ ==========================================

Every environment runs for exactly 1000 control steps, like the suite's
benchmarking tasks, and every reward lies in [0, 1].  ``tol`` below is
``dm_control.utils.rewards.tolerance(x, bounds, margin, value_at_margin,
sigmoid)`` (defaults: margin 0, value_at_margin 0.1, sigmoid 'gaussian').

The three-link reacher's model and cup-spin's start state are those of the released TD-MPC2 code
(FIDELITY.md D6): links 0.09 / 0.09 / 0.10 m, finger at 0.09 m (reach 0.27 m), base joint unlimited,
middle and last joints within +-80 degrees (``assets/reacher_three.xml`` says which is which); cup-spin
rejection-samples the ball's start uniformly until it lies inside the cup without penetration (in 10% of
episodes anywhere without penetration), see :meth:`CupSpin.initialize_episode`.
"""

from __future__ import annotations

import dataclasses
import functools
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Callable, Union

import numpy as np
from dm_control import mujoco
from dm_control.rl import control
from dm_control.suite import (ball_in_cup, base, cheetah, common, hopper,
                              pendulum, reacher, walker)
from dm_control.utils import rewards

__all__ = ["CUSTOM_TASKS", "load"]

CUSTOM_TASKS: tuple[str, ...] = (
    "walker-walk-backwards",
    "walker-run-backwards",
    "cheetah-run-backwards",
    "cheetah-run-front",
    "cheetah-run-back",
    "cheetah-jump",
    "hopper-hop-backwards",
    "reacher-three-easy",
    "reacher-three-hard",
    "cup-spin",
    "pendulum-spin",
)

RandomLike = Union[int, np.random.RandomState, None]

_ASSETS_DIR = Path(__file__).resolve().parent / "assets"
_INF = float("inf")

# Number of control steps per episode, shared by all tasks so that returns are
# on the same 0..1000 scale as the standard suite tasks.
_EPISODE_STEPS = 1000


def _tol(x: float, bounds: tuple[float, float], margin: float = 0.0,
         value_at_margin: float = 0.1, sigmoid: str = "gaussian") -> float:
    # Physics accessors return 0-d or 1-element arrays; rewards are plain floats
    # (`item` still refuses a genuinely vector-valued input).
    value = float(np.asarray(x).item())
    return float(rewards.tolerance(value, bounds=bounds, margin=margin,
                                   value_at_margin=value_at_margin,
                                   sigmoid=sigmoid))


# --------------------------------------------------------------------------
# Walker
# --------------------------------------------------------------------------

_WALKER_STAND_HEIGHT = 1.2
_WALKER_WALK_SPEED = 1.0
_WALKER_RUN_SPEED = 8.0


class WalkerBackwards(walker.PlanarWalker):
    """dm_control's planar walker, rewarded for moving in the -x direction."""

    def stand_reward(self, physics: walker.Physics) -> float:
        """stand = (3*tol(torso_height, (1.2, inf), margin=0.6) + (1 + upright)/2) / 4."""
        standing = _tol(physics.torso_height(), (_WALKER_STAND_HEIGHT, _INF),
                        margin=_WALKER_STAND_HEIGHT / 2)
        upright = (1.0 + float(physics.torso_upright())) / 2.0
        return (3.0 * standing + upright) / 4.0

    def get_reward(self, physics: walker.Physics) -> float:
        """stand * (5*move + 1)/6 with
        move = tol(horizontal_velocity, (-inf, -speed), margin=speed/2,
                   value_at_margin=0.5, sigmoid='linear')."""
        speed = self._move_speed
        move = _tol(physics.horizontal_velocity(), (-_INF, -speed),
                    margin=speed / 2, value_at_margin=0.5, sigmoid="linear")
        return self.stand_reward(physics) * (5.0 * move + 1.0) / 6.0


def _walker_physics() -> walker.Physics:
    return walker.Physics.from_xml_string(*walker.get_model_and_assets())


# --------------------------------------------------------------------------
# Cheetah
# --------------------------------------------------------------------------
#
# Model changes.  The only change to dm_control's cheetah.xml is cosmetic: the
# stock ground plane is drawn over x in [-2, 198] because the stock task only
# runs forwards, so a cheetah running backwards (up to ~80 m in 10 s) would be
# rendered off the floor.  MuJoCo planes are infinite for collision, so
# re-centring and enlarging the plane changes rendering only, not dynamics.
#
# Joint ranges are deliberately NOT widened.  We checked by optimising over
# joint angles and pitch (stance foot on the ground, static kinematics):
#   * on the back leg the stock ranges reach torso z = 1.23 with the front foot
#     above 1.3, i.e. the full "up" reward of cheetah-run-back;
#   * on the front leg they reach torso z = 1.09 with the back foot above 1.6,
#     i.e. up = 0.97.  The front leg is simply shorter than the back one:
#     widening the front thigh from -57 to -90 (or even -120) degrees only
#     raises this to 1.17-1.19, so no range of motion gives a much better
#     handstand.
#   * every joint has stiffness = 2 * gear, so the motors can hold at most
#     +-0.5 rad of deflection against the springs without help from ground
#     forces; that, not the joint range, is what bounds the poses the cheetah
#     can hold.
# Wider ranges would therefore buy almost no reward, and they would change both
# the dynamics and the initial-state distribution (dm_control's Cheetah samples
# joint angles uniformly within their ranges), making these tasks less
# comparable with cheetah-run.

_CHEETAH_RUN_BACKWARDS_SPEED = 8.0  # 0.8 x dm_control's cheetah-run speed (10).
_CHEETAH_LEG_RUN_SPEED = 6.0
_CHEETAH_UP_HEIGHT = 1.2
_CHEETAH_STILL_SPEED = 0.5
_CHEETAH_GROUND_HALF_LENGTH = 200.0


class CheetahPhysics(cheetah.Physics):
    """dm_control's cheetah Physics plus the body heights the new rewards use."""

    def torso_height(self) -> float:
        """Height of the torso body's origin (the middle of the spine)."""
        return float(self.named.data.xpos["torso", "z"])

    def foot_height(self, foot: str) -> float:
        """Height of the origin of body `foot` ('bfoot' or 'ffoot')."""
        return float(self.named.data.xpos[foot, "z"])


@functools.lru_cache(maxsize=None)
def _cheetah_xml() -> str:
    root = ElementTree.fromstring(common.read_model("cheetah.xml"))
    ground = root.find("./worldbody/geom[@name='ground']")
    if ground is None:
        raise RuntimeError("dm_control's cheetah.xml has no geom named 'ground'")
    _, half_width, spacing = ground.get("size").split()
    ground.set("pos", "0 0 0")
    ground.set("size", f"{_CHEETAH_GROUND_HALF_LENGTH:g} {half_width} {spacing}")
    return ElementTree.tostring(root, encoding="unicode")


def _cheetah_physics() -> CheetahPhysics:
    return CheetahPhysics.from_xml_string(_cheetah_xml(), common.ASSETS)


def _cheetah_up(physics: CheetahPhysics, raised_foot: str) -> float:
    """up = (3*tol(raised foot z, (1.2, inf), margin=0.6)
             + 2*tol(torso z, (1.2, inf), margin=0.6)) / 5."""
    torso_up = _tol(physics.torso_height(), (_CHEETAH_UP_HEIGHT, _INF),
                    margin=_CHEETAH_UP_HEIGHT / 2)
    foot_up = _tol(physics.foot_height(raised_foot), (_CHEETAH_UP_HEIGHT, _INF),
                   margin=_CHEETAH_UP_HEIGHT / 2)
    return (3.0 * foot_up + 2.0 * torso_up) / 5.0


def _cheetah_stand_on_leg(physics: CheetahPhysics, raised_foot: str) -> float:
    """(5*tol((torso z + raised foot z)/2, (1.2, inf), margin=0.6)
        + tol(speed, (-0.5, 0.5), margin=0.5, value_at_margin=0, 'linear')) / 6."""
    height = (physics.torso_height() + physics.foot_height(raised_foot)) / 2.0
    up = _tol(height, (_CHEETAH_UP_HEIGHT, _INF), margin=_CHEETAH_UP_HEIGHT / 2)
    still = _tol(physics.speed(), (-_CHEETAH_STILL_SPEED, _CHEETAH_STILL_SPEED),
                 margin=_CHEETAH_STILL_SPEED, value_at_margin=0.0,
                 sigmoid="linear")
    return (5.0 * up + still) / 6.0


class CheetahRunBackwards(cheetah.Cheetah):
    """Run in the -x direction."""

    def get_reward(self, physics: CheetahPhysics) -> float:
        """tol(speed, (-inf, -8), margin=8, value_at_margin=0, sigmoid='linear')."""
        return _tol(physics.speed(), (-_INF, -_CHEETAH_RUN_BACKWARDS_SPEED),
                    margin=_CHEETAH_RUN_BACKWARDS_SPEED, value_at_margin=0.0,
                    sigmoid="linear")


class CheetahRunOnLeg(cheetah.Cheetah):
    """Run forwards balanced on one leg, the other foot held high."""

    def __init__(self, stance: str, random: RandomLike = None):
        if stance not in ("front", "back"):
            raise ValueError(f"stance must be 'front' or 'back', got {stance!r}")
        # Standing on the front leg means lifting the back foot and vice versa.
        self._raised_foot = "bfoot" if stance == "front" else "ffoot"
        super().__init__(random=random)

    def up_reward(self, physics: CheetahPhysics) -> float:
        """up = (3*foot_up + 2*torso_up)/5, each tol(z, (1.2, inf), margin=0.6)."""
        return _cheetah_up(physics, self._raised_foot)

    def get_reward(self, physics: CheetahPhysics) -> float:
        """up * (5*move + 1)/6 with
        move = tol(speed, (6, inf), margin=6, value_at_margin=0, 'linear')."""
        move = _tol(physics.speed(), (_CHEETAH_LEG_RUN_SPEED, _INF),
                    margin=_CHEETAH_LEG_RUN_SPEED, value_at_margin=0.0,
                    sigmoid="linear")
        return self.up_reward(physics) * (5.0 * move + 1.0) / 6.0


class CheetahJump(cheetah.Cheetah):
    """Rear up, on the front or the back leg, without drifting."""

    def get_reward(self, physics: CheetahPhysics) -> float:
        """(stand_on_front + stand_on_back) / 2, each
        (5*tol((torso z + raised foot z)/2, (1.2, inf), margin=0.6)
         + tol(speed, (-0.5, 0.5), margin=0.5, value_at_margin=0, 'linear')) / 6."""
        on_front = _cheetah_stand_on_leg(physics, raised_foot="bfoot")
        on_back = _cheetah_stand_on_leg(physics, raised_foot="ffoot")
        return (on_front + on_back) / 2.0


# --------------------------------------------------------------------------
# Hopper
# --------------------------------------------------------------------------

_HOPPER_STAND_HEIGHT = 0.6
_HOPPER_MAX_HEIGHT = 2.0
_HOPPER_BACKWARDS_SPEED = 1.0


class HopperHopBackwards(hopper.Hopper):
    """dm_control's hopper, rewarded for hopping in the -x direction."""

    def __init__(self, random: RandomLike = None):
        super().__init__(hopping=True, random=random)

    def get_reward(self, physics: hopper.Physics) -> float:
        """tol(height, (0.6, 2)) * tol(speed, (-inf, -1), margin=0.5,
        value_at_margin=0.5, sigmoid='linear')."""
        standing = _tol(physics.height(), (_HOPPER_STAND_HEIGHT, _HOPPER_MAX_HEIGHT))
        hopping = _tol(physics.speed(), (-_INF, -_HOPPER_BACKWARDS_SPEED),
                       margin=_HOPPER_BACKWARDS_SPEED / 2, value_at_margin=0.5,
                       sigmoid="linear")
        return standing * hopping


def _hopper_physics() -> hopper.Physics:
    return hopper.Physics.from_xml_string(*hopper.get_model_and_assets())


# --------------------------------------------------------------------------
# Three-link reacher
# --------------------------------------------------------------------------

_REACHER_BIG_TARGET = 0.05
_REACHER_SMALL_TARGET = 0.015


class ReacherThree(reacher.Reacher):
    """dm_control's reacher task (initial state, observations) on the released 3-link model.

    Joint angles start uniform within their limits (the elbow and wrist within +-80 degrees, the
    shoulder anywhere), the target uniform at 0.05-0.20 m from the base: dm_control's
    ``Reacher.initialize_episode`` unchanged, as in the released code (FIDELITY.md D6).

    Observations: position (3 joint angles), to_target (finger -> target, xy),
    velocity (3 joint velocities).
    """

    def get_reward(self, physics: reacher.Physics) -> float:
        """1 if |finger - target| <= target radius + finger radius, else 0."""
        radii = float(physics.named.model.geom_size[["target", "finger"], 0].sum())
        return _tol(physics.finger_to_target_dist(), (0.0, radii))


def _reacher_three_physics() -> reacher.Physics:
    xml = (_ASSETS_DIR / "reacher_three.xml").read_text()
    return reacher.Physics.from_xml_string(xml, common.ASSETS)


# --------------------------------------------------------------------------
# Cup spin
# --------------------------------------------------------------------------

# The released start (FIDELITY.md D6): with probability 0.1 the ball may start anywhere (dm_control's catch
# start), otherwise it must start inside the cup; in both cases the position is drawn uniformly from
# dm_control's catch box and redrawn until it is accepted.
_CUP_SPIN_P_OUTSIDE = 0.1
_CUP_SPIN_BALL_X = (-0.2, 0.2)  # ball_x slide offset (m), as dm_control's catch
_CUP_SPIN_BALL_Z = (0.2, 0.5)  # ball_z slide offset (m) from the ball body at z = 0.2
# An in-cup draw is accepted with probability ~1/80 (the box is 0.4 x 0.3 m, the accepted region about
# 0.034 x 0.042 m; measured: 81 draws on average), so 10 000 draws fail only if the model is broken.
_CUP_SPIN_MAX_DRAWS = 10_000
_CUP_SPIN_FAR = 0.5
_CUP_SPIN_FAST = 6.0


class CupSpin(ball_in_cup.BallInCup):
    """Start (mostly) with the ball in the cup; swing it out and around fast."""

    def initialize_episode(self, physics: ball_in_cup.Physics) -> None:
        """The released TD-MPC2 start (FIDELITY.md D6), draw for draw.

        One uniform draw decides whether the ball may start outside the cup (p = 0.1).  Then
        (ball_x, ball_z) ~ U(-0.2, 0.2) x U(0.2, 0.5) is redrawn until the ball penetrates nothing
        (``physics.data.ncon == 0`` after ``after_reset``, dm_control's catch test; contacts have zero
        margin here, so any contact is a penetration) and, unless it may start outside, is inside the
        cup: ``physics.in_target()``, i.e. the ball's centre is within (target half-size - ball radius)
        of the cup's ``target`` site in x and in z, so the whole ball lies inside the site's box, the
        cup's interior.  The cup starts at rest at its origin and the ball at rest.
        """
        may_start_outside = self.random.uniform() < _CUP_SPIN_P_OUTSIDE
        qpos = physics.named.data.qpos
        for _ in range(_CUP_SPIN_MAX_DRAWS):
            qpos["ball_x"] = self.random.uniform(*_CUP_SPIN_BALL_X)
            qpos["ball_z"] = self.random.uniform(*_CUP_SPIN_BALL_Z)
            physics.after_reset()  # forward kinematics and collision detection
            if physics.data.ncon == 0 and (may_start_outside or physics.in_target()):
                break
        else:
            raise RuntimeError(f"cup-spin: no collision-free in-cup ball position in {_CUP_SPIN_MAX_DRAWS} "
                               "draws; has the ball_in_cup model changed?")
        # Skip BallInCup.initialize_episode, which would re-sample the ball without the in-cup test.
        base.Task.initialize_episode(self, physics)

    def get_reward(self, physics: ball_in_cup.Physics) -> float:
        """(1 - in_cup) * (tol(|ball - target|, (0.5, inf), margin=0.25,
        value_at_margin=0.5, 'linear') + 2*tol(|ball velocity|, (6, inf),
        margin=3, value_at_margin=0.5, 'linear')) / 3."""
        in_cup = float(physics.in_target())
        distance = float(np.linalg.norm(physics.ball_to_target()))
        speed = float(np.linalg.norm(physics.named.data.qvel[["ball_x", "ball_z"]]))
        far = _tol(distance, (_CUP_SPIN_FAR, _INF), margin=_CUP_SPIN_FAR / 2,
                   value_at_margin=0.5, sigmoid="linear")
        fast = _tol(speed, (_CUP_SPIN_FAST, _INF), margin=_CUP_SPIN_FAST / 2,
                    value_at_margin=0.5, sigmoid="linear")
        return (1.0 - in_cup) * (far + 2.0 * fast) / 3.0


def _ball_in_cup_physics() -> ball_in_cup.Physics:
    return ball_in_cup.Physics.from_xml_string(*ball_in_cup.get_model_and_assets())


# --------------------------------------------------------------------------
# Pendulum spin
# --------------------------------------------------------------------------

_PENDULUM_SPIN_SPEED = 9.0


class PendulumSpin(pendulum.SwingUp):
    """dm_control's pendulum, rewarded for spinning in either direction."""

    def get_reward(self, physics: pendulum.Physics) -> float:
        """tol(|angular velocity|, (9, inf), margin=4.5, value_at_margin=0.5,
        sigmoid='linear')."""
        return _tol(np.abs(physics.angular_velocity()),
                    (_PENDULUM_SPIN_SPEED, _INF), margin=_PENDULUM_SPIN_SPEED / 2,
                    value_at_margin=0.5, sigmoid="linear")


def _pendulum_physics() -> pendulum.Physics:
    return pendulum.Physics.from_xml_string(*pendulum.get_model_and_assets())


# --------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _TaskSpec:
    make_physics: Callable[[], mujoco.Physics]
    make_task: Callable[[RandomLike], base.Task]
    # Seconds per control step; time_limit = _EPISODE_STEPS * control_timestep.
    # These are the suite's own values for each domain.
    control_timestep: float


_SPECS: dict[str, _TaskSpec] = {
    "walker-walk-backwards": _TaskSpec(
        _walker_physics, lambda r: WalkerBackwards(_WALKER_WALK_SPEED, random=r), 0.025),
    "walker-run-backwards": _TaskSpec(
        _walker_physics, lambda r: WalkerBackwards(_WALKER_RUN_SPEED, random=r), 0.025),
    "cheetah-run-backwards": _TaskSpec(
        _cheetah_physics, lambda r: CheetahRunBackwards(random=r), 0.01),
    "cheetah-run-front": _TaskSpec(
        _cheetah_physics, lambda r: CheetahRunOnLeg("front", random=r), 0.01),
    "cheetah-run-back": _TaskSpec(
        _cheetah_physics, lambda r: CheetahRunOnLeg("back", random=r), 0.01),
    "cheetah-jump": _TaskSpec(
        _cheetah_physics, lambda r: CheetahJump(random=r), 0.01),
    "hopper-hop-backwards": _TaskSpec(
        _hopper_physics, lambda r: HopperHopBackwards(random=r), 0.02),
    "reacher-three-easy": _TaskSpec(
        _reacher_three_physics,
        lambda r: ReacherThree(target_size=_REACHER_BIG_TARGET, random=r), 0.02),
    "reacher-three-hard": _TaskSpec(
        _reacher_three_physics,
        lambda r: ReacherThree(target_size=_REACHER_SMALL_TARGET, random=r), 0.02),
    "cup-spin": _TaskSpec(_ball_in_cup_physics, lambda r: CupSpin(random=r), 0.02),
    "pendulum-spin": _TaskSpec(_pendulum_physics, lambda r: PendulumSpin(random=r), 0.02),
}
assert tuple(_SPECS) == CUSTOM_TASKS


class _UnknownTaskError(KeyError, ValueError):
    """Raised for an unknown task name; catchable as KeyError or ValueError."""

    def __str__(self) -> str:
        # KeyError would otherwise print the message with repr() quotes.
        return str(self.args[0])


def load(name: str, random: RandomLike = None,
         environment_kwargs: dict | None = None) -> control.Environment:
    """Returns the custom task `name` as a dm_control `control.Environment`.

    Args:
      name: one of `CUSTOM_TASKS`.
      random: seed or `np.random.RandomState` for the task, as in dm_control.
      environment_kwargs: extra keyword arguments for `control.Environment`;
        they override this module's `time_limit` / `control_timestep`.
    """
    try:
        spec = _SPECS[name]
    except (KeyError, TypeError):
        raise _UnknownTaskError(
            f"unknown custom DMControl task {name!r}; valid tasks: "
            f"{', '.join(CUSTOM_TASKS)}") from None
    kwargs = {
        "time_limit": _EPISODE_STEPS * spec.control_timestep,
        "control_timestep": spec.control_timestep,
    }
    kwargs.update(environment_kwargs or {})
    return control.Environment(spec.make_physics(), spec.make_task(random), **kwargs)
