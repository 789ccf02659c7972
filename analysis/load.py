"""Reading run files and released curves into one tidy table, and aligning them on a common step grid.

Every loader returns what it read *and* what it could not use: a ``problems`` table (``kind, path, algorithm,
task, seed, message``) that lists missing runs, corrupt files, runs split because their configs differ, unknown
tasks, non-finite values (left out) and everything the alignment dropped; :func:`missing_steps` reports
evaluations missing in the middle of a run. Nothing is skipped silently.

The tidy evaluation table (``EVAL_COLUMNS``) has one row per (algorithm, task, seed, env step):
``return`` is the mean evaluation episode return, ``success`` the success rate in 0-1 (NaN where the suite has
none) and ``score`` the normalised score of :func:`analysis.scores.normalised_score` (0-100). ``step`` is always in
**env steps** (action repeat included): ``source_step`` is the step as the file wrote it and ``step_unit`` that
file's unit (``env`` or ``agent``; analysis/units.py declares it per source, FIDELITY.md D1), so
``step = source_step × action repeat`` for agent-step sources and ``step = source_step`` otherwise.

Offline multi-task runs (run-file format 3, ``step_unit: update``; results/README.md) count **gradient updates**,
not env steps, so they never enter that table: :func:`load_runs` reads them into ``RunSet.offline``
(``OFFLINE_COLUMNS``, one row per (run, task, evaluation), ``step_unit`` ``update``) and ``RunSet.offline_runs``
(one row per run), with the same problem kinds as online runs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from analysis import PAPER_ALGORITHMS, AnalysisInputError
from analysis import units as U
from analysis.scores import normalised_score
from envs.registry import TASKS, TaskSpec, UnknownTaskError, get_task

EVAL_COLUMNS = ["source", "algorithm", "task", "suite", "domain", "seed", "step", "return", "success", "score",
                "budget", "config_hash", "path", "source_step", "step_unit"]
PROBLEM_COLUMNS = ["kind", "path", "algorithm", "task", "seed", "message"]
OFFLINE_COLUMNS = ["source", "algorithm", "name", "dataset", "model_size", "params", "task", "suite", "domain", "seed",
                   "step", "step_unit", "return", "success", "score", "total_steps", "config_hash", "path"]
OFFLINE_STEP_UNIT = "update"
"""run.json ``step_unit`` of an offline run (algorithms/common/runfiles.py ``OFFLINE_STEP_UNIT``)."""
OFFLINE_FORMAT_VERSION = 3

PRESET_PARAMETERS: dict[str, int] = {"1.7M": 1_435_067, "6M": 5_389_930, "21M": 18_970_218, "54M": 48_791_146,
                                     "340M": 317_383_129}
"""Learnable world-model parameters of each size preset in the multi-task configuration (80 tasks, 39-dim padded
state, 6 actions; target Qs excluded): README.md "Size presets", counted by tests/test_world_model.py. The
analysis does not build models (it never imports the algorithms), so fig. 6's x axis uses these counts; a
dataset of fewer tasks or smaller observations has slightly fewer parameters (a task embedding row and the
encoder's first layer), which moves no preset past its neighbour on a log axis. A preset not listed gets NaN."""

MBDPO_PRESET_PARAMETERS: dict[str, int] = {"1.7M": 1_673_532, "6M": 5_970_027, "21M": 20_916_843,
                                           "54M": 53_573_995, "340M": 340_242_906}
"""MBDPO's learnable parameters per preset in the same configuration: the world model plus the energy and the score
network (README.md "Size presets"; tests/test_memory.py counts them). The paper's preset names count these."""

# The TD-MPC2-era release names the MyoSuite hand tasks `myo-hand-reach`; the registry (and mbdpo's) `myo-reach`.
_PUBLISHED_ALIASES = {re.compile(r"^myo-hand-"): "myo-"}
PIXELS_SUFFIX = "-pixels"


@dataclass
class RunSet:
    """What a loader read: tidy evaluations, per-run metadata, training logs, the problems it found and the step
    unit of each source it read (``step_units``: :data:`analysis.units.UNITS_COLUMNS`, one row per source folder)."""

    evals: pd.DataFrame
    runs: pd.DataFrame = field(default_factory=pd.DataFrame)
    train: pd.DataFrame = field(default_factory=pd.DataFrame)
    problems: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=PROBLEM_COLUMNS))
    step_units: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=U.UNITS_COLUMNS))
    offline: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=OFFLINE_COLUMNS))
    offline_runs: pd.DataFrame = field(default_factory=pd.DataFrame)

    def __add__(self, other: RunSet) -> RunSet:
        return RunSet(_concat([self.evals, other.evals], EVAL_COLUMNS), _concat([self.runs, other.runs]),
                      _concat([self.train, other.train]), _concat([self.problems, other.problems], PROBLEM_COLUMNS),
                      _concat([self.step_units, other.step_units], U.UNITS_COLUMNS),
                      _concat([self.offline, other.offline], OFFLINE_COLUMNS),
                      _concat([self.offline_runs, other.offline_runs]))


def _concat(frames: list[pd.DataFrame], columns: list[str] | None = None) -> pd.DataFrame:
    frames = [f for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame(columns=columns or [])
    return pd.concat(frames, ignore_index=True)


def _problem(kind: str, path: Path | str, message: str, algorithm: str = "", task: str = "",
             seed: int | None = None) -> dict:
    return {"kind": kind, "path": str(path), "algorithm": algorithm, "task": task, "seed": seed, "message": message}


def _drop_non_finite(frame: pd.DataFrame, values: dict[str, pd.Series], path: Path, problems: list[dict],
                     algorithm: str, task: str, seed: int | None = None) -> pd.DataFrame:
    """``frame`` without the rows where any of ``values`` is NaN or ±inf, each such row reported as ``non_finite``
    (one problem per seed) so that an inf never reaches a mean or a curve. ``values`` maps a column label (for
    the message) to the values to check, aligned with ``frame``'s index; ``frame`` must have ``step`` and
    ``seed``."""
    bad = pd.Series(False, index=frame.index)
    for series in values.values():
        bad |= ~np.isfinite(series.to_numpy(dtype=float))
    if not bad.any():
        return frame
    for s, rows in frame.loc[bad].groupby("seed"):
        labels = [label for label, series in values.items() if (~np.isfinite(series.loc[rows.index])).any()]
        problems.append(_problem("non_finite", path, f"{len(rows)} evaluation(s) with a non-finite "
                                 f"{'/'.join(labels)} (steps {_span(np.sort(rows['step'].to_numpy()))}); "
                                 "excluded from every statistic", algorithm, task,
                                 int(s) if seed is None else seed))
    return frame.loc[~bad]


UNKNOWN = "?"
"""The suite or domain of a task the registry lacks and whose run.json does not say (never a guess)."""


def task_spec(task: str) -> TaskSpec | None:
    """The registered spec of ``task``: a built-in entry, or an installed task plug-in's
    (:func:`envs.registry.get_task`); None when neither knows it (a plug-in package not installed here, or one that
    cannot be used), so that the caller reports it rather than failing on a KeyError."""
    spec = TASKS.get(task)
    if spec is not None:
        return spec
    try:
        return get_task(task)
    except UnknownTaskError:  # TaskPluginError included: a broken plug-in's task is as unknown as a missing one
        return None


def task_domain(task: str) -> str:
    """The domain of ``task`` (built-in or installed plug-in), :data:`UNKNOWN` when the registry does not know it."""
    spec = task_spec(task)
    return spec.domain if spec is not None else UNKNOWN


@dataclass(frozen=True)
class TaskFacts:
    """What the analysis needs of a task the registry does not know, from its run files: run.json's ``suite`` and
    ``domain`` (:data:`UNKNOWN` when absent) and the metric eval.csv shows (``success`` when it has success values)."""

    suite: str
    domain: str
    metric: str


def run_facts(info: Mapping, ev: pd.DataFrame) -> TaskFacts:
    """The :class:`TaskFacts` of an online run on an unregistered task. run.json records ``suite`` and ``domain``
    (results/README.md) but not the metric; a suite without success leaves eval.csv's ``success`` empty, so any
    success value means a success task (scored success × 100), none a return task (return / 10)."""
    def text(key: str) -> str:
        value = info.get(key)
        return value.strip() if isinstance(value, str) and value.strip() else UNKNOWN

    success = pd.to_numeric(ev["success"], errors="coerce") if "success" in ev.columns else pd.Series(dtype=float)
    return TaskFacts(text("suite"), text("domain"), "success" if bool(np.isfinite(success).any()) else "return")


def _with_task_columns(df: pd.DataFrame, facts: Mapping[str, TaskFacts] | None = None) -> pd.DataFrame:
    """``df`` with ``suite``, ``domain`` and ``score``: from the registry (a built-in or an installed plug-in task),
    else from ``facts`` (what an unregistered task's run files say)."""
    specs: dict[str, TaskSpec | TaskFacts] = {}
    for t in df["task"].unique():
        spec = task_spec(t)
        specs[t] = spec if spec is not None else (facts or {}).get(t, TaskFacts(UNKNOWN, UNKNOWN, "return"))
    df["suite"] = df["task"].map(lambda t: specs[t].suite)
    df["domain"] = df["task"].map(lambda t: specs[t].domain)
    metric = df["task"].map(lambda t: specs[t].metric)
    df["score"] = normalised_score(df["return"], df["success"], metric)
    return df


def plugin_algorithms(runs: pd.DataFrame) -> list[str]:
    """The algorithm labels of own runs whose run.json ``algo`` is none of the paper's
    (:data:`analysis.PAPER_ALGORITHMS`): plug-in algorithms, named, coloured and compared like the paper's
    everywhere, but no baseline of the paper's claims. A variant (``name=…``) keeps its ``algo``: ``tdmpc2-small``
    is no plug-in, ``linear-small`` is. An offline-to-online family of a paper algorithm (``mbdpo-finetune``) is none
    either, even where its run.json names the family as ``algo`` (runs written by hand or by older tools)."""
    from analysis.o2o import family_of  # o2o imports this module

    if runs.empty or "algo" not in runs.columns or "algorithm" not in runs.columns:
        return []
    algo = runs["algo"].fillna(runs["algorithm"]).astype(str)
    paper = algo.map(lambda a: a in PAPER_ALGORITHMS or (family_of(a) or ("",))[0] in PAPER_ALGORITHMS)
    return sorted(set(runs.loc[~paper, "algorithm"].astype(str)))


# --------------------------------------------------------------------------------------------------------- ours

def _read_csv(path: Path, required: Iterable[str]) -> pd.DataFrame:
    df = pd.read_csv(path)
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ValueError(f"missing column(s) {missing}; has {list(df.columns)}")
    return df


def _flatten(config: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def load_runs(root: str | Path, expected: Iterable[tuple[str, str, int]] | None = None,
              train_logs: bool = True) -> RunSet:
    """Read every run under ``root`` (``{name}/{task}/{seed}/`` as written by the trainer) into a :class:`RunSet`.

    A run is identified by its folder; its algorithm label is the run name (the algorithm or an explicit
    ``name=`` of a variant). Seeds of one (name, task) whose ``config_hash`` differ are never averaged: they are
    relabelled ``name@hash`` and the split is reported. Runs listed in ``expected`` (name, task, seed) but absent
    — or, without ``expected``, holes in each name's own task × seed grid — are reported as ``missing``; unreadable files as
    ``corrupt`` with their path; evaluations with a non-finite return (or an infinite success) as ``non_finite``
    with the file's path, and left out. ``runs`` holds one row per run (status, config hash, wall time, flattened config
    keys ``agent.*``, and a fine-tuning run's ``init_new_task`` and ``init_pretrained_tasks``, None for others);
    ``train`` the train.csv rows (with ``algorithm, task, domain, seed``) when ``train_logs``.

    Offline runs (:func:`is_offline_run`; ``{name}/{dataset}/{seed}/``) go to ``offline`` (``OFFLINE_COLUMNS``: one
    row per task per evaluation, ``step`` in gradient updates) and ``offline_runs``, never to ``evals``: their steps
    are not env steps. Their algorithm label is :func:`offline_family` (the run name less ``-offline-<size>``).
    """
    root = Path(root)
    if not root.is_dir():
        raise AnalysisInputError(f"runs directory {str(root)!r} " + ("is a file, not a folder" if root.exists() else
                                 "does not exist") + " (expected results/runs or --runs DIR)")
    problems: list[dict] = []
    evals, runs, trains = [], [], []
    facts: dict[str, TaskFacts] = {}  # tasks the registry lacks, from their run files
    offline: list[pd.DataFrame] = []
    offline_runs: list[dict] = []
    run_dirs = find_run_dirs(root)
    if not run_dirs:
        raise AnalysisInputError(f"no run folders under {str(root)!r}: expected the results root, its runs/ folder "
                                 "or any folder of runs/{name}/{task}/{seed}/ (a run folder holds run.json)")
    for run_dir in run_dirs:
        run_json = run_dir / "run.json"
        name, task, seed_dir = run_dir.parent.parent.name, run_dir.parent.name, run_dir.name
        try:
            info = json.loads(run_json.read_text())
        except (OSError, ValueError) as exc:
            problems.append(_problem("corrupt", run_json, f"cannot read run metadata: {exc}", name, task))
            continue
        try:
            config = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            problems.append(_problem("corrupt", run_dir / "config.yaml", f"cannot read run config: {exc}", name,
                                     task))
            continue
        seed = int(info.get("seed", seed_dir))
        if is_offline_run(info):
            frame, meta = _read_offline_run(run_dir, info, config, name, task, seed, problems)
            if meta is not None:
                offline_runs.append(meta)
            if frame is not None:
                offline.append(frame)
            continue
        spec = task_spec(task)
        recorded = info.get("domain")
        if spec is None and not (isinstance(recorded, str) and recorded.strip()):
            # nothing says which domain's tables it belongs to (run.json records the domain of every task the
            # trainer ran, plug-in tasks included): a misnamed folder as likely as a task
            problems.append(_problem("unknown_task", run_dir, f"task {task!r} is not a registered task (no task "
                                     f"plug-in installed here provides it) and run.json records no domain (domain "
                                     f"{UNKNOWN!r}); not analysed", name, task, seed))
            continue
        eval_path = run_dir / "eval.csv"
        if not eval_path.exists():
            problems.append(_problem("missing", eval_path, "run has no eval.csv yet", name, task, seed))
            continue
        try:
            ev = _read_csv(eval_path, ["step", "episode_return", "success"])
            ev["step"] = pd.to_numeric(ev["step"], errors="raise").astype(np.int64)
            ev["episode_return"] = pd.to_numeric(ev["episode_return"], errors="raise").astype(float)
        except (OSError, ValueError, TypeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            problems.append(_problem("corrupt", eval_path, f"cannot read evaluations: {exc}", name, task, seed))
            continue
        if spec is None:
            # a plug-in task whose package is not installed here: analysed with what its run files say, and said
            known = facts.setdefault(task, run_facts(info, ev))
            problems.append(_problem("unknown_task", run_dir, f"task {task!r} is not registered here (its task "
                                     "plug-in is not installed?): analysed with run.json's suite "
                                     f"{known.suite!r} and domain {known.domain!r}, scored as a {known.metric} task "
                                     "(eval.csv's success column), its budget run.json's total_env_steps; install "
                                     "the plug-in for its registered facts", name, task, seed))
        # run.json's facts win over config keys of the same name (config.yaml's device may say "auto")
        meta = {**_flatten(config), "algorithm": name, "algo": info.get("algo", name), "task": task, "seed": seed,
                "status": info.get("status", ""), "config_hash": info.get("config_hash", ""),
                "env_steps_done": info.get("env_steps_done"), "total_env_steps": info.get("total_env_steps"),
                "wall_time_s": info.get("wall_time_s"), "device": info.get("device", ""), "path": str(run_dir),
                # a fine-tuning run's pretraining set (results/README.md): whether its task is held-out (fig. 7);
                # None for runs from scratch and for runs written before the keys existed
                "init_new_task": info.get("init_new_task"),
                "init_pretrained_tasks": tuple(info["init_pretrained_tasks"]) if isinstance(
                    info.get("init_pretrained_tasks"), list) else None}
        runs.append(meta)
        if meta["status"] != "finished":
            problems.append(_problem("incomplete", run_dir, f"run status is {meta['status']!r}: " + (
                f"its evaluations end at env step {int(ev['step'].max())}" if len(ev) else
                "no evaluation yet (eval.csv is empty)"), name, task, seed))
        frame = pd.DataFrame({
            "source": "ours", "algorithm": name, "task": task, "seed": seed, "step": ev["step"],
            "return": ev["episode_return"], "success": pd.to_numeric(ev["success"], errors="coerce"),
            "budget": meta["total_env_steps"] or (int(ev["step"].max()) if len(ev) else 0),
            "config_hash": meta["config_hash"], "path": str(eval_path), "source_step": ev["step"],
            "step_unit": U.OWN_RUNS_STEP_UNIT})
        # an empty success cell is NaN and means "this suite has none"; only ±inf there is a bad value
        success_inf = frame["success"].where(~frame["success"].isna(), 0.0)
        evals.append(_drop_non_finite(frame, {"return": frame["return"], "success": success_inf}, eval_path,
                                      problems, name, task, seed))
        if train_logs and (run_dir / "train.csv").exists():
            try:
                tr = _read_csv(run_dir / "train.csv", ["step"])
            except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
                problems.append(_problem("corrupt", run_dir / "train.csv", f"cannot read training log: {exc}", name,
                                         task, seed))
            else:
                trains.append(tr.assign(algorithm=name, task=task, seed=seed, config_hash=meta["config_hash"]))

    runs_df = pd.DataFrame(runs)
    evals_df = _concat(evals, EVAL_COLUMNS)
    train_df = _concat(trains)
    if not evals_df.empty:
        evals_df = _with_task_columns(evals_df, facts)[EVAL_COLUMNS]
        relabel = _split_mixed_configs(runs_df, problems)
        if relabel:
            for frame in (evals_df, runs_df, train_df):
                if frame.empty:
                    continue
                key = list(zip(frame["algorithm"], frame["task"], frame["config_hash"]))
                frame["algorithm"] = [relabel.get(k, a) for k, a in zip(key, frame["algorithm"])]
    domains = {t: facts[t].domain if t in facts else task_domain(t) for t in {m["task"] for m in runs}}
    if not runs_df.empty:
        runs_df["domain"] = runs_df["task"].map(domains)  # tab. 1 and the ledger's C7 group run times by it
    if not train_df.empty:
        train_df["domain"] = train_df["task"].map(domains)
    parents = {d.parent.parent.parent for d in run_dirs}  # the runs/ folder, whichever folder was given
    runs_root = parents.pop() if len(parents) == 1 else root
    problems += _missing_runs(evals_df, expected, source_root=runs_root, across_algorithms=False)
    names = sorted(evals_df["algorithm"].unique()) if not evals_df.empty else []
    units = pd.DataFrame([{"source": "ours", "folder": str(runs_root / name.split("@")[0]), "algorithm": name,
                           "step_unit": U.OWN_RUNS_STEP_UNIT, "origin": "harness run files (eval.csv counts env steps)",
                           "reading": U.reading(U.OWN_RUNS_STEP_UNIT)} for name in names], columns=U.UNITS_COLUMNS)
    offline_df, offline_runs_df = _finish_offline(offline, offline_runs, problems)
    return RunSet(evals_df, runs_df, train_df, pd.DataFrame(problems, columns=PROBLEM_COLUMNS), units, offline_df,
                  offline_runs_df)


RUN_DEPTH = 4
"""How far below the folder given to :func:`find_run_dirs` a run folder may lie: the results root holds
``runs/{name}/{task}/{seed}/``, four levels down."""


def find_run_dirs(root: str | Path) -> list[Path]:
    """The run folders (those holding a ``run.json``) at ``root`` or up to :data:`RUN_DEPTH` levels below it, so that
    a run folder ``{name}/{task}/{seed}``, a task or name folder above it, the ``runs/`` folder and the results root
    all work; a run's name, task and seed are its folder's last three path parts. Hidden folders are skipped."""
    root = Path(root)
    found = set()
    for depth in range(RUN_DEPTH + 1):
        for run_json in root.glob("/".join(["*"] * depth + ["run.json"])):
            rel = run_json.relative_to(root).parts[:-1]
            if any(part.startswith(".") for part in rel) or not run_json.is_file():
                continue
            run_dir = run_json.parent
            if len(run_dir.resolve().parts) < 4:  # a run folder needs {name}/{task}/{seed} above run.json
                continue
            found.add(run_dir)
    return sorted(found)


def _split_mixed_configs(runs: pd.DataFrame, problems: list[dict]) -> dict[tuple[str, str, str], str]:
    """Labels ``name@hash`` for (name, task) groups whose seeds ran different configs."""
    relabel = {}
    for (name, task), group in runs.groupby(["algorithm", "task"]):
        hashes = sorted(group["config_hash"].unique())
        if len(hashes) < 2:
            continue
        for h in hashes:
            relabel[(name, task, h)] = f"{name}@{h[:8]}"
        seeds = {h: sorted(group.loc[group["config_hash"] == h, "seed"]) for h in hashes}
        problems.append(_problem("mixed_config", Path(group["path"].iloc[0]).parent,
                                 f"seeds ran different configs ({seeds}); they are kept apart as "
                                 f"{', '.join(f'{name}@{h[:8]}' for h in hashes)}, not averaged", name, task))
    return relabel


def _missing_runs(evals: pd.DataFrame, expected: Iterable[tuple[str, str, int]] | None,
                  source_root: Path, across_algorithms: bool) -> list[dict]:
    """Holes: (algorithm, task, seed) of ``expected`` without data; without ``expected``, holes in each algorithm's
    tasks × seeds grid, where the tasks are the algorithm's own (our runs: variants often cover a few tasks) or,
    ``across_algorithms``, every task any algorithm has (released curves: one fixed grid)."""
    if evals.empty:
        have: set = set()
    else:
        have = set(evals[["algorithm", "task", "seed"]].drop_duplicates().itertuples(index=False, name=None))
    if expected is None:
        if evals.empty:
            return []
        all_tasks = sorted(evals["task"].unique())
        expected = [(alg, task, seed) for alg, group in evals.groupby("algorithm")
                    for task in (all_tasks if across_algorithms else sorted(group["task"].unique()))
                    for seed in sorted(group["seed"].unique())]
    return [_problem("missing", source_root / alg / task / str(seed), "no evaluations for this run", alg, task,
                     int(seed))
            for alg, task, seed in expected if (alg, task, int(seed)) not in have]


# ------------------------------------------------------------------------------------------------------ offline

def is_offline_run(info: Mapping) -> bool:
    """Whether a run.json is an offline multi-task run (format 3): its steps are gradient updates and its eval.csv
    has a row per task, so reading it as an online run would misname its dataset folder as a task and its updates
    as env steps. ``step_unit: update``, or format 3 with a ``tasks`` list (a run.json written before its first
    counter was known still has ``tasks``)."""
    if info.get("step_unit") == OFFLINE_STEP_UNIT:
        return True
    try:
        version = int(info.get("format_version", 0))
    except (TypeError, ValueError):
        return False
    return version >= OFFLINE_FORMAT_VERSION and "tasks" in info


def preset_parameters(model_size: str, algo: str = "") -> float:
    """Learnable parameters of a size preset for ``algo`` (:data:`MBDPO_PRESET_PARAMETERS` for MBDPO, else the
    world model's :data:`PRESET_PARAMETERS`), NaN for a size the table lacks (a custom size cannot be placed on
    fig. 6's axis without building the model) and for a plug-in algorithm (``algo`` none of the paper's): its
    network is its own, so the world model's count would place it on fig. 6's axis by a number it does not have."""
    if algo and algo not in PAPER_ALGORITHMS:
        return float("nan")
    table = MBDPO_PRESET_PARAMETERS if algo == "mbdpo" else PRESET_PARAMETERS
    return float(table.get(str(model_size), np.nan))


def offline_family(name: str, algo: str, model_size: str) -> str:
    """The algorithm label of an offline run: its run name without the model size the workflow appends
    (``mbdpo-offline-1.7M`` → ``mbdpo``; workflow/scripts/plan.py names a family ``<algo>-offline[-<size>]``), so that
    the sizes of one algorithm form one line of the scaling figure. A name of another form (a variant,
    ``name=...``) is kept, less a trailing ``-<size>``, so that variants are never averaged with the default."""
    base = name[: -len(model_size) - 1] if model_size and name.endswith(f"-{model_size}") else name
    return algo if algo and base == f"{algo}-offline" else base


def _read_offline_run(run_dir: Path, info: Mapping, config: Mapping, name: str, dataset: str, seed: int,
                      problems: list[dict]) -> tuple[pd.DataFrame | None, dict | None]:
    """(evaluations, run metadata) of one offline run; a problem, and None, for what cannot be used.

    run.json ``tasks`` must be a non-empty list (else ``corrupt``); eval.csv rows of a task outside it, or of a task
    the registry lacks, are ``unknown_task`` and left out; a task of ``tasks`` without any evaluation in a run that
    has evaluations is ``missing``; non-finite values are ``non_finite``; an unfinished run is ``incomplete``."""
    tasks = info.get("tasks")
    if not isinstance(tasks, list) or not tasks or not all(isinstance(t, str) for t in tasks):
        problems.append(_problem("corrupt", run_dir / "run.json", f"offline run.json has no list of tasks "
                                 f"(tasks={tasks!r}); expected the dataset's task names", name, dataset, seed))
        return None, None
    agent = config.get("agent") if isinstance(config.get("agent"), dict) else {}
    model_size = str(agent.get("model_size", "")) if agent.get("model_size") is not None else ""
    algo = str(info.get("algo", "") or config.get("algo", ""))
    algorithm = offline_family(name, algo, model_size)
    total = info.get("total_steps")
    meta = {"algorithm": algorithm, "name": name, "algo": algo, "dataset": dataset, "seed": seed,
            "model_size": model_size, "params": preset_parameters(model_size, algo), "tasks": ",".join(tasks),
            "n_tasks": len(tasks), "status": info.get("status", ""), "config_hash": info.get("config_hash", ""),
            "steps_done": info.get("steps_done"), "total_steps": total, "wall_time_s": info.get("wall_time_s"),
            "device": info.get("device", ""), "dataset_path": info.get("dataset", ""), "path": str(run_dir),
            **_flatten(config)}
    eval_path = run_dir / "eval.csv"
    if not eval_path.exists():
        problems.append(_problem("missing", eval_path, "offline run has no eval.csv yet", algorithm, dataset, seed))
        return None, meta
    try:
        ev = _read_csv(eval_path, ["step", "task", "episode_return", "success"])
        ev["step"] = pd.to_numeric(ev["step"], errors="raise").astype(np.int64)
        ev["episode_return"] = pd.to_numeric(ev["episode_return"], errors="raise").astype(float)
        ev["task"] = ev["task"].astype(str)
    except (OSError, ValueError, TypeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        problems.append(_problem("corrupt", eval_path, f"cannot read offline evaluations: {exc}", algorithm, dataset,
                                 seed))
        return None, meta
    if meta["status"] != "finished":
        problems.append(_problem("incomplete", run_dir, f"offline run status is {meta['status']!r}: " + (
            f"its evaluations end at update {int(ev['step'].max())} of {total}" if len(ev) else
            "no evaluation yet (eval.csv is empty)"), algorithm, dataset, seed))
    for task in sorted(set(ev["task"]) - set(tasks)):
        problems.append(_problem("unknown_task", eval_path, f"eval.csv has {int((ev['task'] == task).sum())} row(s) "
                                 f"of task {task!r}, which is not one of run.json's tasks {tasks}; left out",
                                 algorithm, task, seed))
    for task in sorted({t for t in tasks if task_spec(t) is None}):
        problems.append(_problem("unknown_task", run_dir / "run.json", f"task {task!r} of this offline run is not a "
                                 "registered task; its evaluations are left out", algorithm, task, seed))
    if len(ev):
        for task in [t for t in tasks if t not in set(ev["task"])]:
            problems.append(_problem("missing", eval_path, f"task {task!r} of run.json's tasks has no evaluation",
                                     algorithm, task, seed))
    ev = ev[ev["task"].isin(tasks) & ev["task"].map(lambda t: task_spec(t) is not None)]
    frame = pd.DataFrame({
        "source": "ours", "algorithm": algorithm, "name": name, "dataset": dataset, "model_size": model_size,
        "params": meta["params"], "task": ev["task"], "seed": seed, "step": ev["step"],
        "step_unit": OFFLINE_STEP_UNIT, "return": ev["episode_return"],
        "success": pd.to_numeric(ev["success"], errors="coerce"), "total_steps": total,
        "config_hash": meta["config_hash"], "path": str(eval_path)})
    success_inf = frame["success"].where(~frame["success"].isna(), 0.0)
    frame = _drop_non_finite(frame, {"return": frame["return"], "success": success_inf}, eval_path, problems,
                             algorithm, dataset, seed)
    return frame, meta


def _finish_offline(frames: list[pd.DataFrame], runs: list[dict],
                    problems: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The offline table (task columns and scores added) and run table; seeds of one (algorithm, dataset, model
    size) whose ``config_hash`` differ are relabelled ``algorithm@hash`` and reported (``mixed_config``), as online:
    runs of different configs are never averaged (the model size alone is expected to differ across a sweep)."""
    table = _concat(frames, OFFLINE_COLUMNS)
    runs_df = pd.DataFrame(runs)
    if runs_df.empty:
        return pd.DataFrame(columns=OFFLINE_COLUMNS), runs_df
    relabel: dict[tuple[str, str, str, str], str] = {}
    for (alg, dataset, size), group in runs_df.groupby(["algorithm", "dataset", "model_size"]):
        hashes = sorted(group["config_hash"].unique())
        if len(hashes) < 2:
            continue
        for h in hashes:
            relabel[(alg, dataset, size, h)] = f"{alg}@{h[:8]}"
        seeds = {h: sorted(group.loc[group["config_hash"] == h, "seed"]) for h in hashes}
        problems.append(_problem("mixed_config", Path(group["path"].iloc[0]).parent,
                                 f"offline seeds of model size {size} ran different configs ({seeds}); kept apart as "
                                 f"{', '.join(f'{alg}@{h[:8]}' for h in hashes)}, not averaged", alg, dataset))
    for frame in (table, runs_df):
        if relabel and not frame.empty:
            keys = zip(frame["algorithm"], frame["dataset"], frame["model_size"], frame["config_hash"])
            frame["algorithm"] = [relabel.get(k, a) for k, a in zip(keys, frame["algorithm"])]
    if table.empty:
        return pd.DataFrame(columns=OFFLINE_COLUMNS), runs_df
    table = _with_task_columns(table.reset_index(drop=True))
    table["seed"] = table["seed"].astype(int)
    return table[OFFLINE_COLUMNS], runs_df


# ---------------------------------------------------------------------------------------------------- published

def published_task_name(file_stem: str, pixels: bool) -> str:
    """The registry name of a released curve file: ``myo-hand-reach`` → ``myo-reach``; pixel folders → ``-pixels``."""
    name = file_stem
    for pattern, replacement in _PUBLISHED_ALIASES.items():
        name = pattern.sub(replacement, name)
    return f"{name}{PIXELS_SUFFIX}" if pixels else name


def load_published(root: str | Path, algorithms: Iterable[str] | None = None,
                   step_units: Mapping[str, str] | Iterable[str] | None = None) -> RunSet:
    """Read released curves (``root/{algorithm}[-pixels]/{task}.csv``, the format of shared/reference/FORMAT.md).

    Steps become env steps (FIDELITY.md D1): each folder's unit comes from ``step_units`` (``{folder or algorithm:
    "env"|"agent"}`` or ``["mbdpo=env", ...]``, :func:`analysis.units.parse_step_units`), else from
    :data:`analysis.units.PUBLISHED_STEP_UNITS`, else env steps with a ``step_unit_assumed`` problem. An agent-step
    file's ``step`` is multiplied by the task's action repeat (registry); ``source_step`` keeps the file's value.
    An override naming no folder under ``root`` is an error (a typo must not leave the declared unit in force).

    ``step,reward,seed`` or ``step,success,seed``. Success tasks come in two scales: TD-MPC2-era folders give
    ``success`` in 0-1, the mbdpo folders give success × 100 in the ``reward`` column; both become ``success`` in
    0-1 here (a success task's ``return`` is left NaN). A folder ``X-pixels`` holds algorithm X's Visual RL curves.
    Duplicate evaluations of one step keep the last row (reported); files of tasks outside the registry are
    reported and skipped; an unreadable file is reported with its path; rows whose value is NaN or ±inf are
    reported as ``non_finite`` (with the file's path) and left out.
    """
    root = Path(root)
    if not root.is_dir():
        raise AnalysisInputError(f"published results directory {str(root)!r} does not exist "
                                 "(expected per-algorithm folders of per-task CSVs)")
    wanted = set(algorithms) if algorithms is not None else None
    overrides = U.parse_step_units(step_units)
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    if not folders:
        raise AnalysisInputError(f"published results directory {str(root)!r} has no algorithm folders")
    names = {f.name for f in folders} | {f.name.removesuffix(PIXELS_SUFFIX) for f in folders}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise AnalysisInputError(f"--step-unit: no released folder or algorithm {', '.join(map(repr, unknown))} under "
                                 f"{str(root)!r}; folders: {', '.join(f.name for f in folders)}")
    problems: list[dict] = []
    frames = []
    unit_rows = []
    for folder in folders:
        pixels = folder.name.endswith(PIXELS_SUFFIX)
        algorithm = folder.name[: -len(PIXELS_SUFFIX)] if pixels else folder.name
        if wanted is not None and algorithm not in wanted:
            continue
        unit, origin = U.resolve_unit(folder.name, overrides)
        unit_rows.append({"source": "published", "folder": folder.name, "algorithm": algorithm, "step_unit": unit,
                          "origin": origin, "reading": U.reading(unit)})
        if origin.startswith("default"):
            problems.append(_problem("step_unit_assumed", folder, f"step unit of folder {folder.name!r} is not "
                                     f"declared (analysis/units.py); read as {unit} steps — set it with "
                                     f"--step-unit {folder.name}=env|agent", algorithm))
        for path in sorted(folder.glob("*.csv")):
            task = published_task_name(path.stem, pixels)
            spec = task_spec(task)
            if spec is None:
                problems.append(_problem("unknown_task", path, f"{task!r} is not one of the paper's 114 task "
                                         "entries; not analysed", algorithm, task))
                continue
            try:
                df = pd.read_csv(path)
                value_col = "success" if "success" in df.columns else "reward"
                missing = [c for c in ("step", value_col, "seed") if c not in df.columns]
                if missing:
                    raise ValueError(f"missing column(s) {missing}; has {list(df.columns)}")
                step = pd.to_numeric(df["step"], errors="raise").astype(np.int64)
                value = pd.to_numeric(df[value_col], errors="raise").astype(float)
                seed = pd.to_numeric(df["seed"], errors="raise").astype(int)
            except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
                problems.append(_problem("corrupt", path, f"cannot read released curve: {exc}", algorithm, task))
                continue
            if spec.metric == "success":
                # mbdpo's release writes success x 100 under `reward`; the TD-MPC2 era writes 0-1 under `success`.
                success = value / 100.0 if value_col == "reward" else value
                ret = pd.Series(np.nan, index=value.index)
            else:
                success, ret = pd.Series(np.nan, index=value.index), value
            # FIDELITY.md D1: agent-step files are put on env steps with the task's own action repeat.
            scale = spec.action_repeat if unit == U.AGENT else 1
            frame = pd.DataFrame({"source": "published", "algorithm": algorithm, "task": task, "seed": seed,
                                  "step": step * scale, "return": ret, "success": success, "budget": spec.budget,
                                  "config_hash": "", "path": str(path), "source_step": step, "step_unit": unit})
            frame = _drop_non_finite(frame, {value_col: value}, path, problems, algorithm, task)
            dup = frame.duplicated(["seed", "step"], keep="last")
            for s, n in frame.loc[dup].groupby("seed").size().items():
                problems.append(_problem("duplicate_step", path, f"{n} evaluation(s) repeat an earlier step; the "
                                         "last row of each step is kept", algorithm, task, int(s)))
            frames.append(frame.loc[~dup])
    evals = _concat(frames, EVAL_COLUMNS)
    if evals.empty:
        raise AnalysisInputError(f"no released curves found under {str(root)!r}"
                                 + (f" for algorithms {sorted(wanted)}" if wanted else ""))
    evals = _with_task_columns(evals)[EVAL_COLUMNS]
    problems += _missing_runs(evals, None, source_root=root, across_algorithms=True)
    return RunSet(evals, problems=pd.DataFrame(problems, columns=PROBLEM_COLUMNS),
                  step_units=pd.DataFrame(unit_rows, columns=U.UNITS_COLUMNS))


# ---------------------------------------------------------------------------------------------------- alignment

def default_grid(evals: pd.DataFrame, every: int | None = None) -> dict[str, np.ndarray]:
    """Per domain: 0, every, 2·every, … up to the domain's budget (the most common budget of its runs).

    ``every`` defaults to the most common spacing between consecutive evaluations in the domain.
    """
    grids = {}
    for domain, group in evals.groupby("domain"):
        step = every
        if step is None:
            diffs = group.sort_values("step").groupby(["algorithm", "task", "seed"])["step"].diff().dropna()
            diffs = diffs[diffs > 0]
            step = int(diffs.mode().iloc[0]) if len(diffs) else None
        end = int(group["budget"].mode().iloc[0])
        if step is None:  # one evaluation per run (runs in progress): its step, or a twentieth of the budget
            step = int(group["step"].max()) or max(1, end // 20)
        grids[domain] = np.arange(0, end + 1, step, dtype=np.int64)
    return grids


def align(evals: pd.DataFrame, grid: dict[str, np.ndarray] | np.ndarray | None = None,
          tolerance: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Put every run on a common step grid by **nearest previous evaluation**; return (aligned, dropped).

    A grid step g takes the run's last evaluation at a step ≤ g. Grid steps before a run's first evaluation, and
    grid steps more than ``tolerance`` (default: the grid spacing) past its last one, get no value; evaluations
    after the grid's end are not used. Each is listed in ``dropped`` (``algorithm, task, seed, reason, n, steps``)
    so a reader sees exactly what a figure leaves out. ``aligned`` keeps ``eval_step``, the step the value came from.
    Grid steps filled across a hole in the middle of a run are kept; :func:`missing_steps` reports them.
    """
    if grid is None:
        grid = default_grid(evals)
    aligned, dropped = [], []
    for (domain, alg, task, seed), run in evals.groupby(["domain", "algorithm", "task", "seed"], sort=True):
        steps_grid = grid if isinstance(grid, np.ndarray) else grid.get(domain)
        if steps_grid is None or len(steps_grid) == 0:
            dropped.append({"algorithm": alg, "task": task, "seed": seed, "reason": f"no grid for domain {domain}",
                            "n": len(run), "steps": _span(np.sort(run["step"].to_numpy()))})
            continue
        spacing = int(np.diff(steps_grid).min()) if len(steps_grid) > 1 else int(steps_grid[0]) or 1
        tol = spacing if tolerance is None else tolerance
        run = run.sort_values("step")
        steps = run["step"].to_numpy()
        idx = np.searchsorted(steps, steps_grid, side="right") - 1
        before = idx < 0
        stale = ~before & (steps_grid - steps[np.clip(idx, 0, None)] > tol) & (steps_grid > steps[-1])
        keep = ~before & ~stale
        if before.any():
            dropped.append({"algorithm": alg, "task": task, "seed": seed, "reason": "before first evaluation",
                            "n": int(before.sum()), "steps": _span(steps_grid[before])})
        if stale.any():
            dropped.append({"algorithm": alg, "task": task, "seed": seed,
                            "reason": f"run ends at {int(steps[-1])}", "n": int(stale.sum()),
                            "steps": _span(steps_grid[stale])})
        past = steps > steps_grid[-1]
        if past.any():
            dropped.append({"algorithm": alg, "task": task, "seed": seed, "reason": "after the grid's end",
                            "n": int(past.sum()), "steps": _span(steps[past])})
        rows = run.iloc[idx[keep]].copy()
        rows["eval_step"] = rows["step"].to_numpy()
        rows["step"] = steps_grid[keep]
        aligned.append(rows)
    columns = [*EVAL_COLUMNS, "eval_step"]
    return (_concat(aligned, columns).reset_index(drop=True),
            pd.DataFrame(dropped, columns=["algorithm", "task", "seed", "reason", "n", "steps"]))


MISSING_STEP_GAP = 1.5
"""Consecutive evaluations further apart than this many grid spacings mean evaluations are missing between them
(an evaluation lands at the first episode boundary after its nominal step, so a gap of up to one spacing plus an
episode is normal; one missing evaluation makes it about two spacings)."""


def missing_steps(evals: pd.DataFrame, grid: dict[str, np.ndarray] | np.ndarray | None = None) -> pd.DataFrame:
    """Problems (``PROBLEM_COLUMNS``, kind ``missing_step``): one per run whose evaluations have a hole in the
    middle, naming the grid steps that :func:`align` fills from the evaluation before the hole.

    A hole is a pair of consecutive evaluations more than :data:`MISSING_STEP_GAP` grid spacings apart; the grid
    steps strictly between them are reported. Steps before the first or after the last evaluation are not holes
    (``align`` drops or fills those and lists them in ``dropped``)."""
    if grid is None:
        grid = default_grid(evals)
    problems = []
    for (domain, alg, task, seed), run in evals.groupby(["domain", "algorithm", "task", "seed"], sort=True):
        steps_grid = grid if isinstance(grid, np.ndarray) else grid.get(domain)
        if steps_grid is None or len(steps_grid) < 2:
            continue  # without a spacing there is no hole to speak of (align reports a missing grid)
        spacing = int(np.diff(steps_grid).min())
        steps = np.unique(run["step"].to_numpy())
        holes, filled = [], 0
        for a, b in zip(steps[:-1], steps[1:]):
            inside = steps_grid[(steps_grid > a) & (steps_grid < b)]
            if b - a > MISSING_STEP_GAP * spacing and len(inside):
                holes.append(f"{_span(inside)} filled from step {int(a)} (next evaluation at {int(b)})")
                filled += len(inside)
        if holes:
            problems.append(_problem("missing_step", run["path"].iloc[0], f"{filled} grid step(s) lack an evaluation "
                                     f"(grid spacing {spacing}): {'; '.join(holes)}", alg, task, int(seed)))
    return pd.DataFrame(problems, columns=PROBLEM_COLUMNS)


def _span(steps: np.ndarray) -> str:
    return f"{int(steps[0])}" if len(steps) == 1 else f"{int(steps[0])}-{int(steps[-1])}"


def values_at(evals: pd.DataFrame, step: int | dict[str, int] | None = None,
              tolerance: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One value per run at ``step`` (an int, a per-domain dict, or each domain's budget end): (values, dropped).

    Nearest previous evaluation as in :func:`align`; ``values`` has a ``step`` column with the step used.
    """
    if step is None:
        ends = {d: int(g["budget"].mode().iloc[0]) for d, g in evals.groupby("domain")}
    elif isinstance(step, dict):
        ends = step
    else:
        ends = {d: int(step) for d in evals["domain"].unique()}
    out, drops = [], []
    for domain, group in evals.groupby("domain"):
        if domain not in ends:
            runs = group[["algorithm", "task", "seed"]].drop_duplicates()
            drops.append(runs.assign(reason=f"no step given for domain {domain}", n=1, steps=""))
            continue
        grid = {domain: np.array([ends[domain]], dtype=np.int64)}
        spacing = _typical_spacing(group)
        aligned, dropped = align(group, grid, tolerance if tolerance is not None else spacing)
        out.append(aligned)
        drops.append(dropped.loc[dropped["reason"] != "after the grid's end"])
    return _concat(out, [*EVAL_COLUMNS, "eval_step"]), _concat(drops, ["algorithm", "task", "seed", "reason", "n",
                                                                       "steps"])


def _typical_spacing(evals: pd.DataFrame) -> int:
    diffs = evals.sort_values("step").groupby(["algorithm", "task", "seed"])["step"].diff().dropna()
    diffs = diffs[diffs > 0]
    return int(diffs.mode().iloc[0]) if len(diffs) else 0
