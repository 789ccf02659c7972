"""The workflow's plan: a config (config/*.yaml) → the list of runs, checked before any job starts.

Imported by workflow/Snakefile and by the tests; nothing here needs Snakemake. A run is (name, algo, task, seed,
steps, overrides); its folder is ``{results_dir}/runs/{name}/{task}/{seed}`` as the trainer writes it, and the
workflow's output for it is ``complete.json`` there, written only after the trainer returned with the run
finished — so a killed or failed job never leaves an output that looks done, and a resubmitted job resumes from
the run's last checkpoint.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from algorithms import plugins
from algorithms.common.config import ConfigError
from algorithms.registry import ALGORITHMS, AlgorithmEntry, algorithm_names, get_algorithm, supports_offline
from envs.registry import DOMAINS, TASKS, UnknownTaskError, all_tasks, get_task

# Algorithms the paper's grid names that are not registered yet: they stay in the grid, a dry run lists them,
# a job of theirs stops before it starts. An algorithm leaves this list by being added to algorithms/registry.py
# (or by an installed plug-in of that name).
PLANNED_ALGORITHMS: dict[str, str] = {}  # e.g. {"ppo": "PPO is not implemented yet (issue N)"}
SUITES = ("dmcontrol", "metaworld", "maniskill2", "myosuite")
COMPLETE_MARKER = "complete.json"

# Rough cost of one env step (ms, acting + updates + evaluation share) per algorithm and preset, measured on this
# project's CPU and extrapolated for a GPU node (benchmarks/README.md); they size the scheduler's time requests.
MS_PER_ENV_STEP = {
    ("sac", None): {"cpu": 10.0, "gpu": 3.0},
    ("tdmpc2", "1.7M"): {"cpu": 200.0, "gpu": 12.0}, ("tdmpc2", "6M"): {"cpu": 700.0, "gpu": 15.0},
    ("tdmpc2", "21M"): {"cpu": 2000.0, "gpu": 25.0}, ("tdmpc2", "54M"): {"cpu": 5000.0, "gpu": 40.0},
    ("tdmpc2", "340M"): {"cpu": 30000.0, "gpu": 120.0},
}
PIXEL_FACTOR = 2.0
# Rough cost of one offline update at batch 1024 (ms) per preset. CPU 1.7M/6M: benchmarks/offline_updates.py on
# this project's 2-core CPU (MBDPO, 2026-12-01: 1165 and 4104 ms), rounded up for the evaluation share; 21M and
# above scaled by parameter count. GPU: not measured (no GPU here), guesses that only size the time requests.
MS_PER_UPDATE = {
    "1.7M": {"cpu": 1300.0, "gpu": 15.0}, "6M": {"cpu": 4500.0, "gpu": 20.0}, "21M": {"cpu": 18000.0, "gpu": 35.0},
    "54M": {"cpu": 45000.0, "gpu": 60.0}, "340M": {"cpu": 300000.0, "gpu": 200.0},
}

# An algorithm outside the tables above (a plug-in, or one of PLANNED_ALGORITHMS) is sized, in this order, by the
# estimate its module provides (algorithms/README.md: COST_MS_PER_ENV_STEP, COST_MS_PER_UPDATE, each {"cpu": ms,
# "gpu": ms}), else by these defaults. The online default is TD-MPC2's at its default 6M preset, the costliest
# built-in at the preset a run gets when it names none (SAC is 70x cheaper on a CPU): an unknown algorithm is more
# likely a model-based one than something cheaper than SAC, and a time request too long only waits longer in the
# queue, while one too short is killed and resubmitted (resuming, but each attempt queues again). The offline
# default is the preset's row of MS_PER_UPDATE (6M when the run names none), the measured MBDPO figure.
DEFAULT_MS_PER_ENV_STEP = MS_PER_ENV_STEP[("tdmpc2", "6M")]
COST_ATTRIBUTES = {"online": "COST_MS_PER_ENV_STEP", "offline": "COST_MS_PER_UPDATE"}
COST_TABLE, COST_PLUGIN, COST_DEFAULT = "cost table", "plug-in estimate", "default"


class PlanError(ValueError):
    """A config the workflow cannot run: the message names the key and the bad value and what would be valid."""


@dataclass(frozen=True)
class Run:
    name: str
    algo: str
    task: str
    seed: int
    steps: int | None
    overrides: tuple[tuple[str, Any], ...] = field(default=())
    after: str | None = None
    """The completion marker of the run this one starts from (an O2O fine-tuning run's pretraining run), an input
    of its job; None for a run that depends on nothing."""

    @property
    def key(self) -> str:
        return f"{self.name}/{self.task}/{self.seed}"

    def overrides_dict(self) -> dict[str, str]:
        return {k: _format(v) for k, v in self.overrides}

    def setting(self, key: str, default: Any = None) -> Any:
        return dict(self.overrides).get(key, default)


def _format(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(map(str, value))
    return str(value)


def _near(value: str, valid: list[str]) -> str:
    near = difflib.get_close_matches(value, valid, n=3, cutoff=0.5)
    return f"; did you mean {', '.join(near)}?" if near else ""


def resolve_tasks(spec: Any, where: str) -> list[str]:
    """Task names from a list of names and selectors: ``all``, ``suite:metaworld``, ``domain:Visual RL``."""
    items = spec if isinstance(spec, list) else [spec]
    out: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise PlanError(f"{where}: task entries must be names, got {item!r}")
        if item == "all":
            # the paper's task table: an installed task plug-in does not change the paper's grid; its tasks are
            # named, or selected by their suite or domain
            out += list(TASKS)
        elif item.startswith("suite:"):
            suite = item.split(":", 1)[1]
            specs = all_tasks()
            suites = list(dict.fromkeys([*SUITES, *(s.suite for s in specs)]))
            if suite not in suites:
                raise PlanError(f"{where}: unknown suite {suite!r}; valid: {', '.join(suites)}")
            out += [s.name for s in specs if s.suite == suite and s.obs != "rgb"]
        elif item.startswith("domain:"):
            domain = item.split(":", 1)[1]
            specs = all_tasks()
            domains = list(dict.fromkeys([*DOMAINS, *(s.domain for s in specs)]))
            if domain not in domains:
                raise PlanError(f"{where}: unknown domain {domain!r}; valid: {', '.join(domains)}")
            out += [s.name for s in specs if s.domain == domain]
        else:
            try:
                get_task(item)
            except UnknownTaskError as err:
                raise PlanError(f"{where}: {err}") from None
            out.append(item)
    return list(dict.fromkeys(out))


def _claimed_plugin_names() -> list[str]:
    """Algorithm names installed plug-ins claim but cannot use (a clash, a bad name): asked for, each is its
    package's one line, not "unknown"."""
    return [problem.name for problem in plugins.sources(frozenset(ALGORITHMS))[1]]


def all_algorithms() -> list[str]:
    """What ``algorithms: [all]`` means: every installed algorithm, the built-ins then the plug-ins, so that a
    plug-in joins the embedded default grid by being installed. A plug-in that cannot be used is in it too (and
    stops the plan naming its package): leaving it out would shrink the grid without anyone asking."""
    return list(dict.fromkeys([*algorithm_names(), *_claimed_plugin_names()]))


def _registered(algo: str) -> bool:
    return algo in ALGORITHMS or algo in algorithm_names()


def _check_algo(algo: Any, where: str) -> str:
    """``algo`` if it is a built-in, a usable installed plug-in (imported and checked here) or planned; PlanError
    otherwise: unknown (near names and the valid ones), or the one line naming a broken plug-in's package."""
    if isinstance(algo, str) and algo in PLANNED_ALGORITHMS and not _registered(algo):
        return algo
    if isinstance(algo, str) and (_registered(algo) or algo in _claimed_plugin_names()):
        try:
            get_algorithm(algo)
        except ConfigError as err:
            raise PlanError(f"{where}: {plugins.one_line(err)}") from None
        return algo
    valid = [*algorithm_names(), *PLANNED_ALGORITHMS]
    raise PlanError(f"{where}: unknown algorithm {algo!r}{_near(str(algo), valid)} (valid: {', '.join(valid)})")


def _offline_capable(algo: str) -> bool:
    """Whether ``algo`` (already checked) trains offline: its Agent has ``set_task``. A planned one does not yet."""
    if algo in PLANNED_ALGORITHMS and not _registered(algo):
        return False
    return supports_offline(get_algorithm(algo))


def offline_algorithms() -> list[str]:
    """The installed algorithms that train offline (multi-task), built-ins first; plug-ins that cannot be loaded
    are left out here (asked for by name, they are their package's error)."""
    out = []
    for name in algorithm_names():
        try:
            if supports_offline(get_algorithm(name)):
                out.append(name)
        except ConfigError:
            continue  # a broken plug-in is not a valid choice to offer; naming it gives its own error line
    return out


def _check_steps(steps: Any, where: str) -> int | None:
    if steps is None:
        return None
    if isinstance(steps, bool) or not isinstance(steps, int) or steps <= 0:
        raise PlanError(f"{where}: steps must be a positive integer or null (the task's budget), got {steps!r}")
    return steps


def _check_seeds(seeds: Any, where: str) -> list[int]:
    if not isinstance(seeds, list) or not seeds or any(isinstance(s, bool) or not isinstance(s, int) or s < 0
                                                      for s in seeds):
        raise PlanError(f"{where}: seeds must be a non-empty list of non-negative integers, got {seeds!r}")
    return seeds


def _overrides_for(block: dict, algo: str) -> dict[str, Any]:
    overrides = block.get("overrides") or {}
    merged = dict(overrides.get("all") or {})
    merged.update(overrides.get(algo) or {})
    return merged


def _slug(parameter: str, value: Any) -> str:
    short = {"agent.eta": "eta", "agent.energy_lambda": "lambda", "agent.diffusion_steps": "T",
             "agent.num_samples": "N", "agent.model_size": ""}.get(parameter, parameter.split(".")[-1])
    return f"{short}{value}"


NOT_IMPLEMENTED: dict[str, str] = {}  # config sections that stop at plan time, with why


@dataclass(frozen=True)
class OfflineRun:
    """One offline (multi-task) run: ``algo`` trained for ``steps`` gradient updates on the dataset folder
    ``dataset``; its folder is ``{results_dir}/runs/{name}/{dataset folder name}/{seed}`` as the trainer writes it."""

    name: str
    algo: str
    dataset: str
    seed: int
    steps: int
    overrides: tuple[tuple[str, Any], ...] = field(default=())

    @property
    def dataset_name(self) -> str:
        from pathlib import Path

        return Path(self.dataset).resolve().name

    @property
    def key(self) -> str:
        return f"{self.name}/{self.dataset_name}/{self.seed}"

    def overrides_dict(self) -> dict[str, str]:
        return {k: _format(v) for k, v in self.overrides}


def random_datasets(config: dict) -> dict[str, dict[str, Any]]:
    """Dataset folders the workflow writes itself from random-action episodes (rule random_dataset), by folder:
    ``{"tasks": [...], "episodes": N, "seed": S}``. From ``offline.random_datasets`` (``{label: {tasks,
    episodes, seed}}``, each label one of ``offline.datasets``) and from the ``o2o`` section's ``random_episodes``.
    A smoke-scale sweep then runs from a clean checkout; a real one names collected or imported datasets."""
    out: dict[str, dict[str, Any]] = {}
    block = config.get("offline") or {}
    specs = block.get("random_datasets") or {}
    where = "offline.random_datasets"
    if not isinstance(specs, dict):
        raise PlanError(f"{where}: a mapping of dataset labels to {{tasks, episodes}}, got {specs!r}")
    datasets = block.get("datasets") or {}
    from offline.tasksets import TaskSetError, resolve_task_set

    for label, spec in specs.items():
        if label not in datasets:
            raise PlanError(f"{where}.{label}: not one of offline.datasets ({', '.join(map(str, datasets)) or 'none'}"
                            "); the label names the folder it writes")
        if not isinstance(spec, dict):
            raise PlanError(f"{where}.{label}: give tasks and episodes, got {spec!r}")
        episodes = spec.get("episodes")
        if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes <= 0:
            raise PlanError(f"{where}.{label}.episodes: episodes per task, a positive integer, got {episodes!r}")
        try:
            tasks = resolve_task_set(spec.get("tasks") or [], check_available=False)
        except (TaskSetError, KeyError, ValueError) as err:
            raise PlanError(f"{where}.{label}.tasks: {err}") from None
        seed = spec.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise PlanError(f"{where}.{label}.seed: a non-negative integer, got {seed!r}")
        out[str(datasets[label])] = {"tasks": list(tasks), "episodes": episodes, "seed": seed}
    o2o = _o2o(config)
    if o2o is not None and o2o.get("random_episodes"):
        out[o2o["dataset"]] = {"tasks": list(o2o["pretrain_tasks"]), "episodes": o2o["random_episodes"], "seed": 0}
    return out


def expand_offline(config: dict) -> list[OfflineRun]:
    """The ``offline`` section's runs: every algorithm × model size × dataset × seed (``PlanError`` names a bad
    key). Keys: ``algorithms``, ``datasets`` (label → dataset folder; a folder another rule may produce),
    ``model_sizes`` (optional: one run family ``<algo>-offline-<size>`` per preset), ``seeds``, ``steps``
    (gradient updates) and ``overrides`` (``all``/per-algorithm config keys, e.g. ``eval_every``)."""
    block = config.get("offline")
    if not block:
        return o2o_pretraining(config)
    where = "offline"
    algos = [_check_algo(a, f"{where}.algorithms") for a in block.get("algorithms") or []]
    bad = [a for a in algos if not _offline_capable(a)]
    if not algos or bad:
        raise PlanError(f"{where}.algorithms: give one or more of {', '.join(offline_algorithms())} (the multi-task "
                        f"agents), got {block.get('algorithms')!r}")
    for algo in dict.fromkeys(algos):
        _cost(algo, "offline", None)  # a malformed plug-in estimate stops here, not in a job's resources
    datasets = block.get("datasets")
    if not isinstance(datasets, dict) or not datasets or not all(isinstance(v, str) and v for v in datasets.values()):
        raise PlanError(f"{where}.datasets: give a mapping of labels to dataset folders (e.g. mt30: data/offline/mt30),"
                        f" got {datasets!r}")
    steps = block.get("steps")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps <= 0:
        raise PlanError(f"{where}.steps: the number of gradient updates, a positive integer, got {steps!r}")
    seeds = _check_seeds(block.get("seeds"), f"{where}.seeds")
    sizes = block.get("model_sizes") or [None]
    from algorithms.world_model.presets import PRESETS

    for size in sizes:
        if size is not None and str(size) not in PRESETS:
            raise PlanError(f"{where}.model_sizes: unknown preset {size!r}; valid: {', '.join(PRESETS)}")
    runs: dict[str, OfflineRun] = {}
    for run in o2o_pretraining(config):
        runs[run.key] = run
    for algo in dict.fromkeys(algos):
        base = _overrides_for(block, algo)
        for size in sizes:
            overrides = dict(base) if size is None else {**base, "agent.model_size": str(size)}
            name = f"{algo}-offline" + ("" if size is None else f"-{size}")
            for path in datasets.values():
                for seed in seeds:
                    run = OfflineRun(name, algo, path, seed, steps, tuple(sorted(overrides.items())))
                    if run.key in runs:
                        raise PlanError(f"{where}.datasets: two datasets share the folder name "
                                        f"{run.dataset_name!r} (run {run.key}); rename one")
                    runs[run.key] = run
    return list(runs.values())


# Padded sizes of TD-MPC2's task sets where the dataset is not there yet to say (Meta-World's 39-dim state, the
# largest action of the set): the plan's memory estimate only needs the padded sizes and the number of tasks.
TASK_SET_SHAPES = {"mt30": (30, 39, 6), "mt80": (80, 39, 6)}


def offline_shape(run: OfflineRun) -> tuple[int, int, int]:
    """(tasks, padded observation size, padded action size) of an offline run's dataset: from its manifest when
    the dataset exists, else from the task set its folder is named after, else mt80's (the larger)."""
    import json
    from pathlib import Path

    manifest = Path(run.dataset) / "manifest.json"
    try:
        data = json.loads(manifest.read_text())
        return len(data["tasks"]), max(data["obs_dims"]), max(data["action_dims"])
    except (OSError, ValueError, KeyError, TypeError):
        return TASK_SET_SHAPES.get(run.dataset_name, TASK_SET_SHAPES["mt80"])


_MEMORY_CACHE: dict[tuple, Any] = {}


def offline_memory(run: OfflineRun):
    """The run's memory estimate (algorithms/common/memory.py: the agent built on the meta device, exact counts)."""
    import gymnasium as gym
    import numpy as np

    from algorithms.common.memory import estimate_memory
    from algorithms.common.configure import build_config
    from algorithms.registry import get_algorithm
    from envs.registry import get_task

    tasks, obs_dim, action_dim = offline_shape(run)
    overrides = {k: v for k, v in run.overrides_dict().items()}
    key = (run.algo, tasks, obs_dim, action_dim, tuple(sorted(overrides.items())))
    if key not in _MEMORY_CACHE:
        # the shapes come from offline_shape: the dataset may not exist yet, so it is not part of this config
        cfg = build_config(run.algo, None, overrides)
        algorithm = get_algorithm(run.algo).load()
        spec = get_task("cartpole-balance", "state")  # shapes come from the spaces below, not from the task

        def build(device):
            return algorithm.Agent(cfg.agent, spec, gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32),
                                   gym.spaces.Box(-1.0, 1.0, (action_dim,), np.float32), device, num_tasks=tasks,
                                   task_id=0, action_dims=[action_dim] * tasks, discounts=[0.99] * tasks)

        _MEMORY_CACHE[key] = estimate_memory(build, cfg.offline.batch_size, cfg.agent.horizon)
    return _MEMORY_CACHE[key]


O2O_DEFAULTS = {"algorithms": ["mbdpo"], "pretrain_seed": 1, "random_episodes": None}


def _o2o(config: dict) -> dict | None:
    """The ``o2o`` section with its defaults, checked (PlanError naming the key), or None when absent."""
    block = config.get("o2o")
    if not block:
        return None
    block = {**O2O_DEFAULTS, **block}
    where = "o2o"
    algos = [_check_algo(a, f"{where}.algorithms") for a in block["algorithms"] or []]
    if not algos or any(not _offline_capable(a) for a in algos):
        raise PlanError(f"{where}.algorithms: give one or more of {', '.join(offline_algorithms())}, got "
                        f"{block['algorithms']!r}")
    if not isinstance(block.get("dataset"), str) or not block["dataset"]:
        raise PlanError(f"{where}.dataset: the pretraining dataset folder (e.g. data/offline/o2o-pretrain), got "
                        f"{block.get('dataset')!r}")
    for key in ("pretrain_steps", "finetune_steps"):
        value = block.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise PlanError(f"{where}.{key}: a positive integer, got {value!r}")
    episodes = block["random_episodes"]
    if episodes is not None and (isinstance(episodes, bool) or not isinstance(episodes, int) or episodes <= 0):
        raise PlanError(f"{where}.random_episodes: a positive integer or null, got {episodes!r}")
    _check_seeds(block.get("seeds"), f"{where}.seeds")
    _check_seeds([block["pretrain_seed"]], f"{where}.pretrain_seed")
    from offline.tasksets import TaskSetError, resolve_task_set

    for key in ("pretrain_tasks", "finetune_tasks"):
        if key == "pretrain_tasks" and not block.get(key) and episodes is None:
            continue  # only a dataset written from random episodes needs the list
        try:
            block[key] = resolve_task_set(block.get(key) or [], check_available=False)
        except (TaskSetError, KeyError, ValueError) as err:
            raise PlanError(f"{where}.{key}: {err}") from None
    overlap = set(block.get("pretrain_tasks") or []) & set(block["finetune_tasks"])
    if overlap:
        raise PlanError(f"{where}: {', '.join(sorted(overlap))} both pretrained on and held out")
    block["algorithms"] = list(dict.fromkeys(algos))
    return block


def o2o_pretraining(config: dict) -> list[OfflineRun]:
    """The pretraining run of the ``o2o`` section, one per algorithm: ``<algo>-o2o-pretrain`` on ``o2o.dataset``
    for ``pretrain_steps`` updates, with ``o2o.agent`` (the model, shared with the online runs) and
    ``o2o.pretrain_overrides`` (offline keys: ``offline.batch_size``, ``eval_every`` in updates, …)."""
    block = _o2o(config)
    if block is None:
        return []
    runs = []
    for algo in block["algorithms"]:
        overrides = {**(block.get("agent") or {}), **_overrides_for({"overrides": block.get("pretrain_overrides")},
                                                                    algo)}
        runs.append(OfflineRun(f"{algo}-o2o-pretrain", algo, block["dataset"], block["pretrain_seed"],
                               block["pretrain_steps"], tuple(sorted(overrides.items()))))
    return runs


def expand_o2o(config: dict) -> list[Run]:
    """Offline-to-online (fig. 7): per algorithm, held-out task and seed, a fine-tuning run ``<algo>-finetune``
    (``init.checkpoint`` = the pretraining run's folder, which it waits for: ``Run.after``) and the from-scratch
    run ``<algo>-scratch`` of the same config and seeds without it, plus ``o2o.scratch_overrides`` (``all``/per
    algorithm; e.g. the seed steps a run without a pretrained model needs, which a short budget must shorten)."""
    block = _o2o(config)
    if block is None:
        return []
    results = config.get("results_dir", "results")
    runs = []
    for pretrain in o2o_pretraining(config):
        algo = pretrain.algo
        overrides = {**(block.get("agent") or {}), **_overrides_for(block, algo)}
        folder = f"{results}/runs/{pretrain.key}"
        for task in block["finetune_tasks"]:
            for seed in block["seeds"]:
                runs.append(Run(f"{algo}-finetune", algo, task, seed, block["finetune_steps"],
                                tuple(sorted({**overrides, "init.checkpoint": folder}.items())),
                                after=f"{folder}/{COMPLETE_MARKER}"))
                scratch = {**overrides, **_overrides_for({"overrides": block.get("scratch_overrides")}, algo)}
                runs.append(Run(f"{algo}-scratch", algo, task, seed, block["finetune_steps"],
                                tuple(sorted(scratch.items()))))
    return runs


def offline_resources(run: OfflineRun, gpu: bool, threads: int | None = None) -> dict[str, Any]:
    """Scheduler hints of an offline run from its preset and its updates (benchmarks/offline_updates.py) and its
    memory estimate: on a CPU node the whole estimate is host memory; on a GPU node the host holds a copy of the
    weights and optimiser state when a checkpoint is written, the dataset's index and the interpreter."""
    size = dict(run.overrides).get("agent.model_size", "6M")
    ms = _cost(run.algo, "offline", str(size))[0]["gpu" if gpu else "cpu"]
    runtime = max(10, math.ceil(1.5 * run.steps * ms / 60000))
    memory = offline_memory(run)
    host = (memory.weights + memory.optimiser + memory.framework) if gpu else memory.total
    mem_mb = max(4000, math.ceil(1.25 * host / 2**20 / 1000) * 1000)  # 25% headroom, whole GB
    return {"threads": threads or (4 if gpu else 2), "mem_mb": mem_mb, "runtime": runtime, "gpu": 1 if gpu else 0,
            "gpu_mem_mb": math.ceil(memory.total / 2**20) if gpu else 0}


def offline_plan_lines(runs: list[OfflineRun], gpu: bool) -> list[str]:
    """One line per offline run family for the plan the workflow prints: its memory estimate and requests."""
    lines, seen = [], set()
    for run in runs:
        if (run.name, run.dataset_name) in seen:
            continue
        seen.add((run.name, run.dataset_name))
        res = offline_resources(run, gpu)
        size = dict(run.overrides).get("agent.model_size", "6M")
        lines.append(f"  {run.name} on {run.dataset_name}: {offline_memory(run).describe()}; requests "
                     f"mem_mb={res['mem_mb']} runtime={res['runtime']} min" + (" gpu=1" if gpu else "")
                     + f" (runtime from the {_cost(run.algo, 'offline', str(size))[1]})")
    return lines


def expand(config: dict) -> list[Run]:
    """Every online run a config asks for, in a stable order, validated (``PlanError`` names the bad key and
    value). The ``offline`` section's runs are :func:`expand_offline`'s."""
    for key, message in NOT_IMPLEMENTED.items():
        if config.get(key):
            raise PlanError(f"'{key}': {message}; this config cannot run yet")
    check_runs_per_gpu(config)
    runs: dict[str, Run] = {}

    def add(run: Run, where: str) -> None:
        old = runs.get(run.key)
        if old is not None and old != run:
            raise PlanError(f"{where}: run {run.key} is asked for twice with different settings "
                            f"({dict(old.overrides)} vs {dict(run.overrides)}); give one of them another name")
        runs[run.key] = run

    for i, block in enumerate(config.get("experiments") or []):
        where = f"experiments[{i}]"
        # `all`: every installed algorithm, built in or a plug-in, so a newly registered or installed one joins
        # without a config change (all_algorithms)
        names = [a for item in block.get("algorithms") or [] for a in (all_algorithms() if item == "all" else [item])]
        algos = list(dict.fromkeys(_check_algo(a, f"{where}.algorithms") for a in names))
        if not algos:
            raise PlanError(f"{where}: 'algorithms' must list at least one of {', '.join(algorithm_names())}")
        tasks = resolve_tasks(block.get("tasks"), f"{where}.tasks")
        seeds = _check_seeds(block.get("seeds"), f"{where}.seeds")
        steps = _check_steps(block.get("steps"), f"{where}.steps")
        for algo in algos:
            name = (block.get("names") or {}).get(algo, algo)
            overrides = tuple(sorted(_overrides_for(block, algo).items()))
            for task in tasks:
                for seed in seeds:
                    add(Run(name, algo, task, seed, steps, overrides), where)

    for i, sweep in enumerate(config.get("sweeps") or []):
        where = f"sweeps[{i}]"
        algo = _check_algo(sweep.get("algo"), f"{where}.algo")
        parameter = sweep.get("parameter")
        if not isinstance(parameter, str) or not parameter:
            raise PlanError(f"{where}: 'parameter' must be a config key such as agent.eta, got {parameter!r}")
        values = sweep.get("values")
        if not isinstance(values, list) or not values:
            raise PlanError(f"{where}: 'values' must be a non-empty list, got {values!r}")
        tasks = resolve_tasks(sweep.get("tasks"), f"{where}.tasks")
        seeds = _check_seeds(sweep.get("seeds"), f"{where}.seeds")
        steps = _check_steps(sweep.get("steps"), f"{where}.steps")
        base = dict(_overrides_for(sweep, algo))
        default = sweep.get("default")
        for value in values:
            overrides = {**base, parameter: value}
            # the default value is one shared run, not one per sweep that lists it
            name = f"{algo}-{sweep.get('prefix', 'ablation')}-" + ("default" if value == default
                                                                    else _slug(parameter, value))
            if value == default:
                overrides.pop(parameter)
            for task in tasks:
                for seed in seeds:
                    add(Run(name, algo, task, seed, steps, tuple(sorted(overrides.items()))), where)
    for run in expand_o2o(config):
        add(run, "o2o")
    for algo in dict.fromkeys(run.algo for run in runs.values()):
        _cost(algo, "online", None)  # a malformed plug-in estimate stops here, not in a job's resources
    return list(runs.values())


def check_overrides(runs: list[Run]) -> None:
    """Build the full run config of each distinct (algorithm, overrides) once: unknown keys and bad values stop
    the plan here, before any job starts."""
    from algorithms.common.config import ConfigError
    from algorithms.common.configure import build_config

    seen = set()
    for run in runs:
        if not _registered(run.algo) or (run.algo, run.overrides) in seen:
            continue  # a planned algorithm has no config to build yet
        seen.add((run.algo, run.overrides))
        # init.*: the pretrained checkpoint does not exist before its job ran; the trainer checks it then
        keys = {k: v for k, v in run.overrides_dict().items() if not k.startswith("init.")}
        try:
            build_config(run.algo, None, {**keys, "task": run.task})
        except ConfigError as err:
            raise PlanError(f"run {run.key}: {err}") from None


MANISKILL2_TASKS = tuple(t for t, s in TASKS.items() if s.suite == "maniskill2")
_OTHER_ENV_AVAILABILITY: dict[str, dict[str, tuple[bool, str]]] = {}


def other_env_availability(python: str) -> dict[str, tuple[bool, str]]:
    """Availability of the ManiSkill2 tasks as seen by another interpreter (the ManiSkill2 environment)."""
    import json
    import subprocess

    if python not in _OTHER_ENV_AVAILABILITY:
        code = ("import json; from envs import availability, get_task; "
                f"print(json.dumps({{t: availability(get_task(t)) for t in {list(MANISKILL2_TASKS)!r}}}))")
        try:
            proc = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=120, check=False)
            result = json.loads(proc.stdout.strip().splitlines()[-1]) if proc.returncode == 0 else None
        except (OSError, ValueError, IndexError, subprocess.TimeoutExpired) as err:
            result, proc = None, err
        if result is None:
            why = getattr(proc, "stderr", str(proc)).strip().splitlines()[-1:] or ["no output"]
            result = {t: (False, f"maniskill2_python {python!r} cannot load the harness: {why[0]}")
                      for t in MANISKILL2_TASKS}
        _OTHER_ENV_AVAILABILITY[python] = {t: tuple(v) for t, v in result.items()}
    return _OTHER_ENV_AVAILABILITY[python]


def blocked(run: Run, maniskill2_python: str | None = None) -> str | None:
    """Why this machine cannot run ``run`` (algorithm not implemented, suite not installed), or None.

    ManiSkill2 runs are judged in their own environment when ``maniskill2_python`` names its interpreter."""
    if run.algo in PLANNED_ALGORITHMS and not _registered(run.algo):
        return f"algorithm {run.algo!r}: {PLANNED_ALGORITHMS[run.algo]}"
    if maniskill2_python and run.task in MANISKILL2_TASKS:
        ok, reason = other_env_availability(maniskill2_python)[run.task]
        return None if ok else reason
    from envs import availability

    ok, reason = availability(get_task(run.task))
    return None if ok else reason


def _plugin_entry(algo: str) -> AlgorithmEntry | None:
    """The plug-in behind ``algo``, loaded; None for a built-in or a planned algorithm (PlanError if broken)."""
    if algo in ALGORITHMS or not _registered(algo):
        return None
    try:
        return get_algorithm(algo)
    except ConfigError as err:
        raise PlanError(plugins.one_line(err)) from None


def plugin_estimate(algo: str, mode: str) -> dict[str, float] | None:
    """The plug-in's own cost estimate for ``mode`` ("online": ms per agent step, "offline": ms per update) from
    its module's COST_MS_PER_ENV_STEP / COST_MS_PER_UPDATE, or None when it gives none (or ``algo`` is no
    plug-in). PlanError naming the package when the attribute is not ``{"cpu": ms, "gpu": ms}``."""
    entry = _plugin_entry(algo)
    attribute = COST_ATTRIBUTES[mode]
    value = getattr(entry.load(), attribute, None) if entry is not None else None
    if value is None:
        return None

    def fine(x: Any) -> bool:
        return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0

    if not (isinstance(value, dict) and set(value) == {"cpu", "gpu"} and all(map(fine, value.values()))):
        raise PlanError(f"plug-in package {entry.package} {entry.version}: {entry.module}.{attribute} must be "
                        f"{{'cpu': ms, 'gpu': ms}} with positive numbers (algorithms/README.md), got {value!r}")
    return {"cpu": float(value["cpu"]), "gpu": float(value["gpu"])}


def _cost(algo: str, mode: str, model_size: str | None) -> tuple[dict[str, float], str]:
    """ms per agent step (online) or per update (offline) of ``algo`` on CPU and GPU, and where the figures come
    from: "cost table", "plug-in estimate (...)" or "default (no estimate for ALGO: ...)"."""
    if mode == "offline":
        row = MS_PER_UPDATE.get(str(model_size), MS_PER_UPDATE["6M"])
        if algo in ALGORITHMS:
            return row, COST_TABLE
    elif algo in ALGORITHMS:
        size = model_size or ("6M" if algo != "sac" else None)
        base_algo = "tdmpc2" if algo in ("mbdpo", "dreamerv3") else algo
        return MS_PER_ENV_STEP.get((base_algo, size if base_algo != "sac" else None),
                                   DEFAULT_MS_PER_ENV_STEP if base_algo != "sac"
                                   else MS_PER_ENV_STEP[("sac", None)]), COST_TABLE
    else:
        row = DEFAULT_MS_PER_ENV_STEP
    estimate = plugin_estimate(algo, mode)
    attribute = COST_ATTRIBUTES[mode]
    if estimate is not None:
        entry = get_algorithm(algo)
        return estimate, f"{COST_PLUGIN} ({entry.module}.{attribute} of {entry.package})"
    what = (f"MS_PER_UPDATE's {str(model_size) if str(model_size) in MS_PER_UPDATE else '6M'} row, MBDPO's"
            if mode == "offline" else "TD-MPC2 6M's, the costliest built-in at its default preset")
    return row, f"{COST_DEFAULT} (no estimate for {algo}: {what}; a plug-in sets {attribute})"


def cost_source(algo: str, mode: str = "online", model_size: str | None = None) -> str:
    """Where the time requests of ``algo``'s runs come from: "cost table" (a built-in), "plug-in estimate (...)"
    or "default (no estimate for ALGO: ...)"."""
    return _cost(algo, mode, model_size)[1]


def cost_lines(runs: list[Run], gpu: bool) -> list[str]:
    """One line per algorithm of the grid for the plan the workflow prints: its runs and where their time requests
    (``runtime``) come from."""
    counts: dict[str, int] = {}
    for run in runs:
        counts[run.algo] = counts.get(run.algo, 0) + 1
    figure = "gpu" if gpu else "cpu"
    lines = []
    for algo, n in counts.items():
        cost, source = _cost(algo, "online", None)
        lines.append(f"  {algo}: {n} run(s), {source}" + ("" if source == COST_TABLE else
                                                             f": {cost[figure]:g} ms per agent step on {figure}"))
    return lines


def _ms_per_step(algo: str, task: str, model_size: str | None, gpu: bool) -> float:
    """ms per agent step of ``algo`` at ``model_size`` (default 6M) on ``task``'s observations: the cost table's,
    a plug-in's estimate or the default (:func:`_cost`)."""
    spec = get_task(task)
    cost = _cost(algo, "online", model_size)[0]
    return cost["gpu" if gpu else "cpu"] * (PIXEL_FACTOR if spec.obs == "rgb" else 1.0)


def estimated_hours(algo: str, task: str, steps: int, model_size: str | None = None, gpu: bool = False) -> float:
    """Hours of one run of ``steps`` env steps by the cost table, without the scheduler's safety margin (the claims
    ledger's cost of deciding a claim; an estimate from rough per-step costs)."""
    spec = get_task(task)
    return steps * _ms_per_step(algo, task, model_size, gpu) / max(spec.action_repeat, 1) / 3.6e6


def estimated_offline_hours(algo: str, updates: int, model_size: str, gpu: bool = False) -> float:
    """Hours of one offline run of ``updates`` gradient updates by :data:`MS_PER_UPDATE` (6M for an unknown size),
    or the plug-in's estimate."""
    cost = _cost(algo, "offline", str(model_size))[0]
    return updates * cost["gpu" if gpu else "cpu"] / 3.6e6


def resources(run: Run, gpu: bool, threads: int | None = None) -> dict[str, Any]:
    """Scheduler hints scaled from the preset and the budget: threads, mem_mb, runtime (minutes), gpu."""
    spec = get_task(run.task)
    steps = run.steps or spec.budget
    size = run.setting("agent.model_size", "6M" if run.algo != "sac" else None)
    ms = _ms_per_step(run.algo, run.task, size, gpu)
    runtime = max(10, math.ceil(1.5 * steps * ms / 60000 / max(spec.action_repeat, 1)))
    buffer = min(int(run.setting("buffer_size", 1_000_000)), steps // max(spec.action_repeat, 1) + 1)
    obs_bytes = 9 * 64 * 64 if spec.obs == "rgb" else 4 * 512
    mem_mb = 4000 + math.ceil(buffer * obs_bytes * 2 / 2**20) + {"340M": 16000, "54M": 4000}.get(str(size), 0)
    return {"threads": threads or (4 if gpu else 2), "mem_mb": mem_mb, "runtime": runtime, "gpu": 1 if gpu else 0}


# ------------------------------------------------------------------------------------- packing runs onto one GPU

def check_runs_per_gpu(config: dict) -> int:
    """``runs_per_gpu`` (default 1): how many online runs share one GPU job (rule train_pack). PlanError names
    a bad value, and a value above 1 without ``gpu: true`` (on a CPU each run is already its own job)."""
    k = config.get("runs_per_gpu", 1)
    if k is None:
        return 1
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise PlanError(f"runs_per_gpu: the number of runs sharing one GPU job, an integer >= 1 (1: one run per "
                        f"job), got {k!r}")
    if k > 1 and not config.get("gpu", False):
        raise PlanError(f"runs_per_gpu: {k} packs runs onto one GPU job, which needs gpu: true; on a CPU each run "
                        "is already its own job: set gpu: true, or runs_per_gpu: 1")
    return k


@dataclass(frozen=True)
class Pack:
    """Runs of the grid that one GPU job trains side by side (rule train_pack); ``id`` is stable as long as its
    members are the same."""

    id: str
    runs: tuple[Run, ...]

    @property
    def keys(self) -> list[str]:
        return [run.key for run in self.runs]


def pack_id(keys: list[str]) -> str:
    import hashlib

    return "pack-" + hashlib.sha256("\n".join(sorted(keys)).encode()).hexdigest()[:10]


def _preset(run: Run) -> str:
    """The model preset a run's memory and speed follow: TD-MPC2/MBDPO ``agent.model_size``, DreamerV3
    ``agent.size``; '' where the algorithm's default applies."""
    return str(run.setting("agent.model_size", run.setting("agent.size", "")) or "")


def packs(runs: list[Run], runs_per_gpu: int, maniskill2_python: str | None = None) -> list[Pack]:
    """The packs of at most ``runs_per_gpu`` runs each, in a stable order. Packable: runs of rule train, i.e. not a
    ManiSkill2 task (rule train_maniskill2, another interpreter) and not blocked on this machine. Runs of the same
    algorithm and model preset are packed together (similar speed and memory), pixel runs apart from state runs
    (twice the time, a larger replay buffer); within a group in (env steps, task, name, seed) order, so runs of one
    length share a pack. A group's last run left alone is no pack: it keeps its own train job, as every run not
    packed does."""
    if runs_per_gpu <= 1:
        return []
    groups: dict[tuple[str, str, str], list[Run]] = {}
    for run in runs:
        if run.task in MANISKILL2_TASKS or blocked(run, maniskill2_python) is not None:
            continue
        groups.setdefault((run.algo, _preset(run), get_task(run.task).obs), []).append(run)
    out = []
    for _, members in sorted(groups.items()):
        members = sorted(members, key=lambda r: (r.steps or get_task(r.task).budget, r.task, r.name, r.seed))
        for start in range(0, len(members), runs_per_gpu):
            chunk = tuple(members[start:start + runs_per_gpu])
            if len(chunk) > 1:
                out.append(Pack(pack_id([r.key for r in chunk]), chunk))
    return out


# Runs on one GPU slow each other down (GPU time, host threads, memory bandwidth) by an amount not measured here:
# each extra member adds half of the slowest member's time to the request. An estimate, on the safe side; a job
# that runs out of time anyway is resubmitted and its runs resume from their checkpoints.
PACK_CONTENTION = 0.5


def pack_resources(pack: Pack, threads: int | None = None) -> dict[str, Any]:
    """Scheduler hints of a pack: one GPU, the members' threads and memory summed, and the slowest member's
    runtime times (1 + PACK_CONTENTION x (members - 1))."""
    each = [resources(run, True, threads) for run in pack.runs]
    slowest = max(r["runtime"] for r in each)
    return {"threads": sum(r["threads"] for r in each), "mem_mb": sum(r["mem_mb"] for r in each),
            "runtime": math.ceil(slowest * (1 + PACK_CONTENTION * (len(each) - 1))), "gpu": 1}


def build_report(snakefile: str | Path, workdir: str | Path, config: dict, report: str | Path) -> str | None:
    """Build Snakemake's HTML report (every figure with its caption) after a successful run, with the run's own
    resolved config (so ``--configfile``/``--config`` choices carry over). Returns None, or why it failed: the
    report is a convenience and never fails the run."""
    import json
    import os
    import subprocess
    import sys
    import tempfile

    report = Path(report)
    report.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(config, handle, default=str)
    try:
        proc = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(snakefile), "-d", str(workdir),
                               "--configfile", handle.name, "--report", str(report)],
                              capture_output=True, text=True, timeout=600, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"the HTML report was not built ({err})"
    finally:
        os.unlink(handle.name)
    if proc.returncode != 0 or not report.exists():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        return f"the HTML report was not built ({tail[0][:300]})"
    return None


def finished_message(analysis_out: str | Path, results_dir: str | Path, report: str | Path | None = None) -> str:
    """What the workflow prints when it ends well (``onsuccess``): the claims ledger with each claim's verdict, where
    summary.md is, and the HTML report (its path when built, else the command that builds it). Paths are absolute, as the working directory of the job is."""
    summary = Path(analysis_out) / "summary.md"
    ledger = Path(analysis_out) / "claims.md"
    verdicts = Path(analysis_out) / "tables" / "claims_summary.csv"
    lines = []
    if ledger.exists():
        lines.append(f"Claims ledger (a verdict for each claim of the paper): {ledger.resolve()}")
        if verdicts.exists():
            import csv

            with open(verdicts, newline="") as f:
                lines += [f"  {r['claim']:>4} {r['title']:<34} {r['verdict']}" for r in csv.DictReader(f)]
    if summary.exists():
        lines.append(f"Analysis summary: {summary.resolve()}")
    else:
        lines.append(f"Finished; there is no analysis summary at {summary} yet (the targets asked for did not "
                     "include the analysis).")
    report = Path(report if report is not None else Path(results_dir) / "report.html")
    if report.exists():
        lines.append(f"HTML report: {report.resolve()}")
    else:
        lines.append(f"HTML report with every figure and caption: snakemake --report {report} (same --configfile)")
    return "\n".join(lines)
