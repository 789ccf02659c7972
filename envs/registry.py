"""The paper's 114 task entries, as data.

Facts from the paper's task table (shared/paper/TASKS.md). The paper says 121 tasks; its table lists 114
distinct entries (its count adds the 7 dog/humanoid "Locomotion" tasks that are already among the DMControl
39). Visual RL entries are the DMControl task rendered to 64x64 RGB; they are registered under
``<task>-pixels`` so that every entry has one unique name (``make_env("cheetah-run", obs="rgb")`` finds them
too).
"""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass, field

# Suites (what must be installed) and domains (how the paper's tables group results).
DMCONTROL, METAWORLD, MANISKILL2, MYOSUITE = "dmcontrol", "metaworld", "maniskill2", "myosuite"
SUITES = (DMCONTROL, METAWORLD, MANISKILL2, MYOSUITE)
DOMAINS = ("DMControl", "MetaWorld", "ManiSkill2", "MyoSuite", "Visual RL")


@dataclass(frozen=True)
class TaskSpec:
    """One registered task entry.

    ``episode_length`` counts agent steps (after action repeat); budgets and evaluation steps count
    environment steps (agent steps x action repeat), as the published curves do.
    """

    name: str
    suite: str
    domain: str
    obs: str  # "state" or "rgb"
    action_repeat: int
    episode_length: int
    source: str  # the suite's own id: dm_control "domain/task", a MetaWorld/MyoSuite/ManiSkill2 env id
    metric: str  # "return" (0-1000) or "success" (0-1)
    budget: int  # env steps of the published MBDPO runs
    custom: bool = False
    camera_id: int = 0
    controller: str | None = None
    frame_stack: int = 1
    render_size: int = 64
    base: str = field(default="")  # the state task a pixel entry renders; its own name otherwise

    @property
    def discount(self) -> float:
        """(L/5 - 1)/(L/5) clipped to [0.95, 0.995], L = episode length in agent steps (TD-MPC2's rule)."""
        horizon = self.episode_length / 5
        return float(min(max((horizon - 1) / horizon, 0.95), 0.995))

    @property
    def seed_steps(self) -> int:
        """Random-action steps before learning, max(1000, 5 L), in agent steps (TD-MPC2's rule)."""
        return max(1000, 5 * self.episode_length)

    def as_dict(self) -> dict:
        record = asdict(self)
        record.update(discount=self.discount, seed_steps=self.seed_steps)
        return record


# --- DMControl: 28 standard + 11 custom state tasks -------------------------------------------------------
DMC_STANDARD = (
    "acrobot-swingup", "cartpole-balance", "cartpole-balance-sparse", "cartpole-swingup",
    "cartpole-swingup-sparse", "cheetah-run", "cup-catch", "dog-run", "dog-trot", "dog-stand", "dog-walk",
    "finger-spin", "finger-turn-easy", "finger-turn-hard", "fish-swim", "hopper-hop", "hopper-stand",
    "humanoid-run", "humanoid-stand", "humanoid-walk", "pendulum-swingup", "quadruped-run", "quadruped-walk",
    "reacher-easy", "reacher-hard", "walker-run", "walker-stand", "walker-walk",
)
DMC_CUSTOM = (
    "walker-walk-backwards", "walker-run-backwards", "cheetah-run-backwards", "cheetah-run-front",
    "cheetah-run-back", "cheetah-jump", "hopper-hop-backwards", "reacher-three-easy", "reacher-three-hard",
    "cup-spin", "pendulum-spin",
)
VISUAL_RL = (
    "acrobot-swingup", "cheetah-run", "finger-spin", "finger-turn-easy", "finger-turn-hard", "quadruped-walk",
    "reacher-easy", "reacher-hard", "walker-run", "walker-walk",
)
PIXEL_SUFFIX = "-pixels"

METAWORLD_TASKS = (
    "assembly", "basketball", "button-press-topdown", "button-press-topdown-wall", "button-press",
    "button-press-wall", "coffee-button", "coffee-pull", "coffee-push", "dial-turn", "disassemble",
    "door-open", "door-close", "drawer-close", "drawer-open", "faucet-open", "faucet-close", "hammer",
    "handle-press-side", "handle-press", "handle-pull-side", "handle-pull", "lever-pull", "peg-insert-side",
    "peg-unplug-side", "pick-out-of-hole", "pick-place", "pick-place-wall", "plate-slide", "plate-slide-side",
    "plate-slide-back", "plate-slide-back-side", "push-back", "push", "push-wall", "reach", "reach-wall",
    "shelf-place", "soccer", "stick-push", "stick-pull", "sweep-into", "sweep", "window-open", "window-close",
    "bin-picking", "box-close", "door-lock", "door-unlock", "hand-insert",
)
# metaworld 3.0.0 provides the v3 versions of the v2 tasks TD-MPC2 used.
METAWORLD_VERSION = "v3"

MANISKILL2_TASKS = {
    "lift-cube": ("LiftCube-v0", "pd_ee_delta_pos"),
    "pick-cube": ("PickCube-v0", "pd_ee_delta_pos"),
    "stack-cube": ("StackCube-v0", "pd_ee_delta_pos"),
    "pick-ycb": ("PickSingleYCB-v0", "pd_ee_delta_pose"),
    "turn-faucet": ("TurnFaucet-v0", "pd_ee_delta_pose"),
}

MYOSUITE_TASKS = {
    "myo-reach": "myoHandReachFixed-v0",
    "myo-reach-hard": "myoHandReachRandom-v0",
    "myo-pose": "myoHandPoseFixed-v0",
    "myo-pose-hard": "myoHandPoseRandom-v0",
    "myo-obj-hold": "myoHandObjHoldFixed-v0",
    "myo-obj-hold-hard": "myoHandObjHoldRandom-v0",
    "myo-key-turn": "myoHandKeyTurnFixed-v0",
    "myo-key-turn-hard": "myoHandKeyTurnRandom-v0",
    "myo-pen-twirl": "myoHandPenTwirlFixed-v0",
    "myo-pen-twirl-hard": "myoHandPenTwirlRandom-v0",
}


def dmc_source(name: str) -> str:
    """dm_control's "domain/task" for a hyphenated task name (cup-catch is ball_in_cup/catch)."""
    domain, _, task = name.partition("-")
    domain = {"cup": "ball_in_cup"}.get(domain, domain)
    return f"{domain}/{task.replace('-', '_')}"


def _build() -> dict[str, TaskSpec]:
    specs: list[TaskSpec] = []
    for name in DMC_STANDARD + DMC_CUSTOM:
        specs.append(TaskSpec(
            name=name, suite=DMCONTROL, domain="DMControl", obs="state", action_repeat=2, episode_length=500,
            source=name if name in DMC_CUSTOM else dmc_source(name), metric="return", budget=4_000_000,
            custom=name in DMC_CUSTOM, base=name,
        ))
    for name in VISUAL_RL:
        specs.append(TaskSpec(
            name=name + PIXEL_SUFFIX, suite=DMCONTROL, domain="Visual RL", obs="rgb", action_repeat=2,
            episode_length=500, source=dmc_source(name), metric="return", budget=1_000_000,
            camera_id=2 if name.startswith("quadruped") else 0, frame_stack=3, base=name,
        ))
    for task in METAWORLD_TASKS:
        specs.append(TaskSpec(
            name=f"mw-{task}", suite=METAWORLD, domain="MetaWorld", obs="state", action_repeat=2,
            episode_length=100, source=f"{task}-{METAWORLD_VERSION}", metric="success", budget=2_000_000,
            base=f"mw-{task}",
        ))
    for name, (env_id, controller) in MANISKILL2_TASKS.items():
        specs.append(TaskSpec(
            name=name, suite=MANISKILL2, domain="ManiSkill2", obs="state", action_repeat=2, episode_length=100,
            source=env_id, metric="success", budget=4_000_000, controller=controller, base=name,
        ))
    for name, env_id in MYOSUITE_TASKS.items():
        specs.append(TaskSpec(
            name=name, suite=MYOSUITE, domain="MyoSuite", obs="state", action_repeat=1, episode_length=100,
            source=env_id, metric="success", budget=2_000_000, base=name,
        ))
    return {spec.name: spec for spec in specs}


TASKS: dict[str, TaskSpec] = _build()


class UnknownTaskError(KeyError):
    """A task name that is not registered; the message lists the nearest registered names."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


def task_names(suite: str | None = None, domain: str | None = None) -> list[str]:
    return [s.name for s in TASKS.values()
            if (suite is None or s.suite == suite) and (domain is None or s.domain == domain)]


def get_task(name: str, obs: str | None = None) -> TaskSpec:
    """The registered spec of ``name``; ``obs="rgb"`` selects the pixel entry of a Visual RL task.

    A DMControl state task that is not among the paper's 10 Visual RL tasks can still be rendered
    (``obs="rgb"``): it gets an unregistered pixel spec with the Visual RL settings.
    """
    if obs not in (None, "state", "rgb"):
        raise ValueError(f"unknown observation kind obs={obs!r}; valid: 'state', 'rgb'")
    spec = TASKS.get(name)
    if spec is None:
        near = difflib.get_close_matches(name, list(TASKS), n=5, cutoff=0.5)
        hint = f"; nearest: {', '.join(near)}" if near else ""
        raise UnknownTaskError(
            f"unknown task {name!r}{hint} ({len(TASKS)} registered; `mbdpo-bench tasks` lists them)")
    if obs is None or obs == spec.obs:
        return spec
    if obs == "rgb" and spec.suite == DMCONTROL:
        registered = TASKS.get(spec.base + PIXEL_SUFFIX)
        if registered is not None:
            return registered
        return TaskSpec(**{**asdict(spec), "name": spec.base + PIXEL_SUFFIX, "domain": "Visual RL", "obs": "rgb",
                           "frame_stack": 3, "budget": 1_000_000,
                           "camera_id": 2 if spec.base.startswith("quadruped") else 0})
    if obs == "state" and spec.obs == "rgb":
        return TASKS[spec.base]
    raise ValueError(f"task {name!r} has no {obs!r} observations (suite {spec.suite} offers 'state' only)")
