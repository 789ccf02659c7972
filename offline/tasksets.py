"""Named task sets (TD-MPC2's mt30 and mt80, the O2O split) and user lists, in the paper's naming.

mt30/mt80 are in TD-MPC2's order (its ``TASK_SET``), so that task ids match the released datasets and
multi-task checkpoints: the 19 original DMControl tasks, the 11 custom ones, then (mt80) the 50 MetaWorld tasks.
The O2O split (config/o2o.yaml): ``o2o-finetune`` the 10 held-out tasks, ``mt80-minus-finetune`` the 70 others.

``resolve_tasks("mt30")``, ``resolve_tasks("cheetah-run,walker-walk")`` or ``resolve_tasks("tasks.yaml")`` (a YAML
list, or a mapping with a ``tasks`` list) give the names, each checked against the task registry;
``require_available`` says which of them this machine cannot create, and why. ``resolve_task_set`` does both,
which is what a command that will create the tasks' environments wants.

Every problem raises ``TaskSetError``, a ``DatasetError``: the command line prints it as one line and exits 2.
"""

from __future__ import annotations

from pathlib import Path

from offline.dataset import DatasetError

DMC_ORIGINAL = (
    "walker-stand", "walker-walk", "walker-run", "cheetah-run", "reacher-easy", "reacher-hard", "acrobot-swingup",
    "pendulum-swingup", "cartpole-balance", "cartpole-balance-sparse", "cartpole-swingup", "cartpole-swingup-sparse",
    "cup-catch", "finger-spin", "finger-turn-easy", "finger-turn-hard", "fish-swim", "hopper-stand", "hopper-hop",
)
DMC_CUSTOM = (
    "walker-walk-backwards", "walker-run-backwards", "cheetah-run-backwards", "cheetah-run-front", "cheetah-run-back",
    "cheetah-jump", "hopper-hop-backwards", "reacher-three-easy", "reacher-three-hard", "cup-spin", "pendulum-spin",
)
METAWORLD_MT50 = tuple("mw-" + name for name in (
    "assembly", "basketball", "button-press-topdown", "button-press-topdown-wall", "button-press",
    "button-press-wall", "coffee-button", "coffee-pull", "coffee-push", "dial-turn", "disassemble", "door-open",
    "door-close", "drawer-close", "drawer-open", "faucet-open", "faucet-close", "hammer", "handle-press-side",
    "handle-press", "handle-pull-side", "handle-pull", "lever-pull", "peg-insert-side", "peg-unplug-side",
    "pick-out-of-hole", "pick-place", "pick-place-wall", "plate-slide", "plate-slide-side", "plate-slide-back",
    "plate-slide-back-side", "push-back", "push", "push-wall", "reach", "reach-wall", "shelf-place", "soccer",
    "stick-push", "stick-pull", "sweep-into", "sweep", "window-open", "window-close", "bin-picking", "box-close",
    "door-lock", "door-unlock", "hand-insert"))
# config/o2o.yaml's finetune_tasks (a test keeps the two equal)
O2O_FINETUNE = ("hopper-hop", "walker-run-backwards", "cheetah-jump", "cup-spin", "finger-turn-hard", "mw-basketball",
                "mw-bin-picking", "mw-disassemble", "mw-hammer", "mw-stick-pull")

MT30: tuple[str, ...] = DMC_ORIGINAL + DMC_CUSTOM
MT80: tuple[str, ...] = MT30 + METAWORLD_MT50

TASK_SETS: dict[str, tuple[str, ...]] = {
    "mt30": MT30,
    "mt80": MT80,
    "o2o-finetune": O2O_FINETUNE,
    "mt80-minus-finetune": tuple(t for t in DMC_ORIGINAL + DMC_CUSTOM + METAWORLD_MT50 if t not in O2O_FINETUNE),
}


class TaskSetError(DatasetError):
    """A task list that cannot be used (unknown names, duplicates, tasks this machine cannot create); a
    DatasetError so that the command line reports it as one line, exit code 2."""


def resolve_tasks(spec: str | list[str] | tuple[str, ...]) -> list[str]:
    """The task names of a named set, a comma-separated list, a YAML file of a list, or a list; each checked
    against the registry (TaskSetError names an unknown task and the nearest registered names)."""
    from envs.registry import UnknownTaskError, get_task

    if isinstance(spec, (list, tuple)):
        names = [str(n).strip() for n in spec]
    elif spec in TASK_SETS:
        names = list(TASK_SETS[spec])
    elif spec.endswith((".yaml", ".yml")):
        import yaml

        file = Path(spec)
        if not file.is_file():
            raise TaskSetError(f"task list file {file} does not exist")
        try:
            data = yaml.safe_load(file.read_text())
        except yaml.YAMLError as err:
            raise TaskSetError(f"task list file {file} is not valid YAML: {err}") from None
        if isinstance(data, dict):
            data = data.get("tasks")
        if not isinstance(data, list) or not all(isinstance(n, str) for n in data):
            raise TaskSetError(f"task list file {file} must hold a YAML list of task names (or a 'tasks' list)")
        names = [n.strip() for n in data]
    else:
        names = [n.strip() for n in spec.split(",")]
    names = [n for n in names if n]
    if not names:
        raise TaskSetError(f"empty task list {spec!r} (named sets: {', '.join(TASK_SETS)})")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise TaskSetError(f"task list has duplicates: {', '.join(duplicates)}")
    for name in names:
        try:
            spec_ = get_task(name)
        except UnknownTaskError as err:
            named = f" of task set {spec!r}" if isinstance(spec, str) and spec in TASK_SETS else ""
            raise TaskSetError(f"task list{named}: {err}; named sets: {', '.join(TASK_SETS)}") from None
        if spec_.obs != "state":
            raise TaskSetError(f"task {name} has pixel observations; offline datasets hold state observations only")
    return names


def unavailable(tasks: list[str]) -> dict[str, str]:
    """Task name -> why this machine cannot create it, for the tasks of ``tasks`` that it cannot."""
    from envs import availability
    from envs.registry import get_task

    missing = {}
    for name in tasks:
        ok, reason = availability(get_task(name))
        if not ok:
            missing[name] = reason
    return missing


def require_available(tasks: list[str]) -> None:
    """TaskSetError naming every task of ``tasks`` this machine cannot create, with the reason."""
    missing = unavailable(tasks)
    if missing:
        details = "; ".join(f"{name}: {reason}" for name, reason in missing.items())
        raise TaskSetError(f"{len(missing)} task(s) of the list are not available on this machine: {details}")


def resolve_task_set(spec: str | list[str] | tuple[str, ...], *, check_available: bool = True) -> list[str]:
    """The task names of ``spec`` (see ``resolve_tasks``), and, with ``check_available``, a TaskSetError naming
    every task this machine cannot create and why: a command that will create environments for the whole list
    (evaluation of a multi-task run, collection) fails before it starts rather than at the first missing task."""
    names = resolve_tasks(spec)
    if check_available:
        require_available(names)
    return names
