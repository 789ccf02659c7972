"""The paper's 114 task entries, as data.

Facts from the paper's task table (shared/paper/TASKS.md). The paper says 121 tasks; its table lists 114
distinct entries (its count adds the 7 dog/humanoid "Locomotion" tasks that are already among the DMControl
39). Visual RL entries are the DMControl task rendered to 64x64 RGB; they are registered under
``<task>-pixels`` so that every entry has one unique name (``make_env("cheetah-run", obs="rgb")`` finds them
too).

Other packages add tasks as plug-ins (entry-point group ``mbdpo_bench.tasks``, section "Task plug-ins" below): their
specs pass the checks built-in entries obey by construction, and ``make_env`` creates them with the plug-in's maker.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import importlib.metadata
import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable

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
    """Names of the registered tasks (built-in, then plug-in ones), optionally of one suite or domain."""
    return [s.name for s in all_tasks()
            if (suite is None or s.suite == suite) and (domain is None or s.domain == domain)]


def get_task(name: str, obs: str | None = None) -> TaskSpec:
    """The registered spec of ``name``; ``obs="rgb"`` selects the pixel entry of a Visual RL task.

    A DMControl state task that is not among the paper's 10 Visual RL tasks can still be rendered
    (``obs="rgb"``): it gets an unregistered pixel spec with the Visual RL settings. A name a task plug-in claims
    against the rules (a built-in name, another plug-in's) is a :class:`TaskPluginError` naming the package.
    """
    if obs not in (None, "state", "rgb"):
        raise ValueError(f"unknown observation kind obs={obs!r}; valid: 'state', 'rgb'")
    usable, problems = _task_plugins()
    claimed = next((p for p in problems if p.name == name), None)
    if claimed is not None:
        raise TaskPluginError(claimed.line)
    spec = TASKS.get(name)
    if spec is None and name in usable:
        return _plugin_task_for(usable[name], obs)
    if spec is None:
        known = [*TASKS, *usable]
        near = difflib.get_close_matches(name, known, n=5, cutoff=0.5)
        hint = f"; nearest: {', '.join(near)}" if near else ""
        unread = sum(1 for p in problems if p.name is None)
        note = f"; {unread} task plug-in(s) could not be read, `mbdpo-bench tasks` names them" if unread else ""
        raise UnknownTaskError(
            f"unknown task {name!r}{hint} ({len(known)} registered; `mbdpo-bench tasks` lists them{note})")
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


# --- Task plug-ins ----------------------------------------------------------------------------------------------
# A package adds tasks with an entry point naming a function (not a module) in its pyproject.toml:
#
#     [project.entry-points."mbdpo_bench.tasks"]
#     mysuite = "my_package.tasks:tasks"
#
# ``tasks()`` returns ``(specs, make)``: a list of TaskSpec and the maker ``make(spec, seed) -> gymnasium.Env``
# that ``make_env`` calls for each of them. The env keeps the registry's contract (envs/__init__.py: float32 state
# or uint8 frames, actions in [-1, 1], the action repeat and the episode length of its spec applied by the env).
# The specs are checked as built-in entries are by construction (:func:`spec_problems`); a plug-in that breaks a
# rule is one line naming its package in ``mbdpo-bench tasks`` and, asked for, a TaskPluginError. The module
# should import lightly (the maker imports the simulator): listing tasks calls every plug-in's function.

TASK_PLUGIN_GROUP = "mbdpo_bench.tasks"
TaskMaker = Callable[[TaskSpec, "int | None"], Any]
"""``make(spec, seed)``: a gymnasium Env of the spec, seeded (``None``: unseeded)."""
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")
"""Task names become a folder of every run path (``results/runs/{algo}/{task}/{seed}``): no spaces, no slashes."""


class TaskPluginError(UnknownTaskError):
    """A task a plug-in provides that cannot be used (bad spec, name clash, env off the contract): the message
    names the package. An UnknownTaskError, so that it is reported wherever an unknown task is."""


@dataclass(frozen=True)
class PluginTask:
    spec: TaskSpec
    make: TaskMaker
    package: str
    version: str
    entry_point: str

    def where(self) -> str:
        return f"task {self.spec.name!r} of plug-in package {self.package} {self.version}"


@dataclass(frozen=True)
class TaskPluginProblem:
    name: str | None  # the task it concerns; None: the whole plug-in (it could not be read)
    line: str


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def spec_problems(spec: Any) -> list[str]:
    """What makes ``spec`` unfit for the registry (the rules built-in entries obey by construction), one phrase each;
    its name is checked against other tasks by :func:`_task_plugins`."""
    if not isinstance(spec, TaskSpec):
        return [f"{spec!r} is not an envs.registry.TaskSpec"]
    out = []
    if not isinstance(spec.name, str) or not NAME_PATTERN.fullmatch(spec.name):
        what = "has spaces" if isinstance(spec.name, str) and any(c.isspace() for c in spec.name) else "is not valid"
        out.append(f"task name {spec.name!r} {what} (letters, digits and _ . + - only: it names the runs' folder)")
    if spec.suite in SUITES or not isinstance(spec.suite, str) or not spec.suite.strip():
        out.append(f"suite {spec.suite!r}: give the plug-in's own suite name (the built-in suites {', '.join(SUITES)} "
                   "are made by their own adapters)")
    if not isinstance(spec.domain, str) or not spec.domain.strip():
        out.append("domain is empty (the analysis groups results by domain)")
    if spec.obs not in ("state", "rgb"):
        out.append(f"obs {spec.obs!r}: 'state' or 'rgb'")
    if spec.metric not in ("return", "success"):
        out.append(f"metric {spec.metric!r}: 'return' or 'success'")
    for key in ("action_repeat", "episode_length", "budget", "frame_stack", "render_size"):
        value = getattr(spec, key)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            out.append(f"{key} must be a positive integer, got {value!r}")
    return out


def _installed_task_entry_points() -> list[tuple[Any, str, str]]:
    seen: dict[tuple[str, str, str], tuple[Any, str, str]] = {}
    for ep in importlib.metadata.entry_points(group=TASK_PLUGIN_GROUP):
        dist = getattr(ep, "dist", None)
        package = dist.metadata["Name"] if dist is not None else "?"
        version = dist.version if dist is not None else "?"
        seen.setdefault((ep.name, ep.value, package), (ep, package, version))  # one dist found twice is one
    return sorted(seen.values(), key=lambda item: (item[1], item[0].name))


def _read_plugin(ep: Any, package: str, version: str) -> tuple[list[PluginTask], list[TaskPluginProblem]]:
    """The tasks one entry point provides, and what is wrong with it or them."""
    where = f"task plug-in package {package} {version} (entry point {ep.name} = {ep.value!r})"
    try:
        function = ep.load()
    except BaseException as err:  # noqa: BLE001 — whatever its import raises, one line
        if isinstance(err, KeyboardInterrupt):
            raise
        return [], [TaskPluginProblem(None, f"{where} fails to import: {type(err).__name__}: {_one_line(err)}")]
    if not callable(function) or isinstance(function, type(importlib)):
        return [], [TaskPluginProblem(None, f"{where}: the entry point must name a function (\"module:function\") "
                                            "returning (specs, make)")]
    try:
        result = function()
    except Exception as err:  # noqa: BLE001
        return [], [TaskPluginProblem(None, f"{where}: its function raised {type(err).__name__}: {_one_line(err)}")]
    if not (isinstance(result, (tuple, list)) and len(result) == 2 and isinstance(result[0], (list, tuple))
            and callable(result[1])):
        return [], [TaskPluginProblem(None, f"{where}: its function must return (specs, make): a list of TaskSpec "
                                            f"and make(spec, seed) -> gymnasium.Env; got {type(result).__name__}")]
    specs, make = result
    tasks, problems = [], []
    names = {getattr(spec, "name", None) for spec in specs}
    for spec in specs:
        found = spec_problems(spec)
        name = spec.name if isinstance(spec, TaskSpec) and isinstance(spec.name, str) else None
        if isinstance(spec, TaskSpec) and spec.base and spec.base not in names:
            found.append(f"base {spec.base!r} is none of this plug-in's tasks")
        if found:
            label = f"task {name!r}" if name is not None else "a task"
            problems.append(TaskPluginProblem(name, f"{where}: {label}: {'; '.join(found)}"))
            continue
        tasks.append(PluginTask(replace(spec, base=spec.base or spec.name), make, package, version, ep.name))
    return tasks, problems


@functools.cache
def _task_plugins() -> tuple[dict[str, PluginTask], tuple[TaskPluginProblem, ...]]:
    """The usable plug-in tasks by name, and one problem per plug-in or task that cannot be used; found on first
    use and kept (:func:`clear_task_plugin_cache`). A name two packages claim, or a built-in one, is used by none."""
    claims: dict[str, list[PluginTask]] = {}
    problems: list[TaskPluginProblem] = []
    for ep, package, version in _installed_task_entry_points():
        tasks, found = _read_plugin(ep, package, version)
        problems += found
        for task in tasks:
            claims.setdefault(task.spec.name, []).append(task)
    usable: dict[str, PluginTask] = {}
    for name, tasks in claims.items():
        if name in TASKS:
            problems += [TaskPluginProblem(name, f"{t.where()}: the name clashes with the built-in task {name!r}; "
                                                 "rename it in that package (or uninstall it)") for t in tasks]
        elif len(tasks) > 1:
            packages = " and ".join(f"{t.package} {t.version}" for t in tasks)
            problems.append(TaskPluginProblem(name, f"task {name!r} is provided twice, by {packages}; uninstall one "
                                                    "or rename the task"))
        else:
            usable[name] = tasks[0]
    return usable, tuple(problems)


def clear_task_plugin_cache() -> None:
    """Find task plug-ins again on next use (after one was installed or removed in this process)."""
    importlib.invalidate_caches()
    _task_plugins.cache_clear()


def _plugin_task_for(task: PluginTask, obs: str | None) -> TaskSpec:
    if obs is None or obs == task.spec.obs:
        return task.spec
    usable, _ = _task_plugins()
    sibling = next((t.spec for t in usable.values() if t.package == task.package and t.spec.base == task.spec.base
                    and t.spec.obs == obs), None)
    if sibling is None:
        raise ValueError(f"{task.where()} has no {obs!r} observations")
    return sibling


def plugin_task(name: str) -> PluginTask | None:
    """The plug-in behind a registered task name, or None for a built-in (or unknown) one."""
    return _task_plugins()[0].get(name)


def all_tasks() -> list[TaskSpec]:
    """Every registered task: the built-in entries, then the usable plug-in ones."""
    return [*TASKS.values(), *(task.spec for task in _task_plugins()[0].values())]


def task_plugin_problems() -> list[str]:
    """One line per task plug-in, or task of one, that cannot be used (each names its package)."""
    return [problem.line for problem in _task_plugins()[1]]
