"""The run folder and its life: where a run lives (``{results_dir}/runs/{name}/{task}/{seed}``), its lock, the
decisions taken before a loop starts (a new run, a resume, a finished run whose files are checked and restored from
its final checkpoint, a run that stopped on non-finite values), the errors that refuse a request, and run.json's
status when a run is interrupted. Nothing here knows how a loop trains: ``run.py`` picks the loop.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any, Callable

from algorithms.common import runfiles
from algorithms.common.checkpoint import CheckpointManager
from algorithms.common.config import RunConfig, config_hash, dump_yaml, load_yaml, to_dict
from algorithms.common.configure import semantic_differences
from envs.registry import get_task

NON_FINITE_STOP = "non_finite"
"""run.json's ``stop_reason`` after a NonFiniteLossError: the same command then refuses to resume unless asked."""


class RunInterrupted(Exception):
    """SIGTERM (e.g. a scheduler's time limit) arrived; the last checkpoint is where the run resumes."""


class RunError(RuntimeError):
    """A run that cannot start: unwritable results folder, a different run in the same folder, …"""


class ConfigMismatchError(RunError):
    """The config asked for differs from the one the run's checkpoint was trained with; nothing was changed."""


def run_dir_for(cfg: RunConfig) -> Path:
    """``{results_dir}/runs/{name}/{task}/{seed}``; an offline run's task folder is its dataset's folder name."""
    if cfg.is_offline:
        return Path(cfg.results_dir) / "runs" / cfg.run_name / Path(cfg.offline.dataset).resolve().name / str(cfg.seed)
    spec = get_task(cfg.task, cfg.obs)
    return Path(cfg.results_dir) / "runs" / cfg.run_name / spec.name / str(cfg.seed)


def make_run_dir(cfg: RunConfig) -> Path:
    """The run's folder, created and checked writable (RunError naming the results folder if not)."""
    run_dir = run_dir_for(cfg)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-probe"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise RunError(f"results folder {cfg.results_dir!r} is not writable ({err.strerror}: {err.filename}; "
                       f"{runfiles.free_space(run_dir)} free there); choose another with --results-dir") from None
    return run_dir


def lock_run_dir(run_dir: Path) -> runfiles.RunLock:
    """Take the run folder's exclusive lock, or RunError naming the process that holds it."""
    lock = runfiles.RunLock(run_dir)
    try:
        lock.acquire()
    except runfiles.RunLocked as err:
        raise RunError(f"{run_dir} is in use by another training process ({err.holder}, lock {err.path}); "
                       "wait for it to end or stop it, then run this command again") from None
    return lock


def remove_if_unused(run_dir: Path) -> None:
    """Delete a run folder this process made that holds nothing but its lock (and empty folders): a run that
    failed before writing anything. Its parents made with it stay (other seeds or tasks may use them)."""
    try:
        entries = list(run_dir.rglob("*"))
    except OSError:
        return
    if all(p.name == runfiles.LOCK_NAME or (p.is_dir() and not any(p.iterdir())) for p in entries):
        shutil.rmtree(run_dir, ignore_errors=True)


def read_run_info(run_dir: Path) -> dict[str, Any]:
    """run.json's contents, or {} when absent or unreadable (it is written atomically, so never half-written)."""
    try:
        return json.loads((run_dir / "run.json").read_text())
    except (OSError, ValueError):
        return {}


def prepare_run_dir(cfg: RunConfig, resume_non_finite: bool = False) -> tuple[Path, bool]:
    """The run's folder, checked writable and consistent with an earlier run there; True if already finished.

    Nothing is written here: config.yaml is written once the agent has been built (RunLoop.resume, lifecycle.py).
    """
    run_dir = make_run_dir(cfg)
    config_file = run_dir / "config.yaml"
    new = to_dict(cfg)
    if config_file.exists():
        old = load_yaml(config_file)
        old.setdefault("algo", cfg.algo)
        diffs = semantic_differences(old, new)
        if diffs:
            raise RunError(f"{run_dir} holds a run with another config ({'; '.join(diffs)}); "
                           "use another --results-dir or name=..., or delete that folder")
    info = read_run_info(run_dir)
    if info.get("status") == "finished":
        return run_dir, True
    if info.get("stop_reason") == NON_FINITE_STOP and not resume_non_finite:
        raise RunError(f"{run_dir} stopped on non-finite values ({info.get('error', 'no message recorded')}). "
                       "Resuming would repeat the same computation from its last finite checkpoint; to do so anyway "
                       "(e.g. after changing the code, or on a GPU, which is not bit for bit) add --resume-non-finite; "
                       "to change a hyper-parameter use another name=... or --results-dir")
    # When config.yaml is gone but a checkpoint holds the config that trained, the trainer compares the two on
    # resume and restores config.yaml from the checkpoint, so that the file records what trained.
    return run_dir, False


def check_finished_run(cfg: RunConfig, run_dir: Path) -> None:
    """Before a run is reported finished: its config is the one asked for and its files are whole.

    The final checkpoint holds a copy of every log: a log that was deleted, cut, edited or damaged since is
    restored from it, and a missing config.yaml is rewritten from it (each said on stderr). Without that
    checkpoint (e.g. deleted to save space) a missing or unreadable log is a RunError naming the file.
    """
    info = read_run_info(run_dir)
    state, path, _ = CheckpointManager(run_dir / "checkpoints").load_latest()
    if cfg.is_offline:
        step_key, total = "updates", info.get("total_steps")
        logs = (("eval", runfiles.OFFLINE_EVAL_COLUMNS), ("train", runfiles.OFFLINE_TRAIN_COLUMNS))
    else:
        step_key, total = "env_step", info.get("total_env_steps")
        logs = (("eval", runfiles.EVAL_COLUMNS), ("train", runfiles.TRAIN_COLUMNS),
                ("episodes", runfiles.EPISODE_COLUMNS))
    if state is not None and total is not None and state["counters"][step_key] < total:
        state = None  # not the final checkpoint: it cannot vouch for the finished logs
    config_file = run_dir / "config.yaml"
    asked = to_dict(cfg)
    if state is not None:
        diffs = semantic_differences(state["config"], asked)
        if diffs:
            raise ConfigMismatchError(f"{run_dir} holds a finished run with another config ({'; '.join(diffs)}; "
                                      f"recorded in checkpoint {path.name}); use another --results-dir or name=...")
    elif not config_file.exists() and info.get("config_hash") not in (None, config_hash(cfg)):
        raise ConfigMismatchError(f"{run_dir} holds a finished run with another config (config_hash "
                                  f"{info.get('config_hash')} in run.json, {config_hash(cfg)} asked; its config.yaml "
                                  "is missing); use another --results-dir or name=...")
    if not config_file.exists():
        runfiles.atomic_write_text(config_file, dump_yaml(state["config"] if state is not None else asked))
        print(f"note: {config_file} was missing; written from the "
              f"{'final checkpoint' if state is not None else 'config asked for (run.json has the same hash)'}",
              file=sys.stderr)
    saved = state.get("logs") if state is not None else None
    for name, columns in logs:
        log = runfiles.CsvLog(run_dir / f"{name}.csv", columns)
        if saved is not None:
            problem = log.disagreement(saved[name]) if log.path.exists() else f"{log.path} is missing"
            if problem is None and len(log) != len(saved[name]["rows"]):
                problem = f"{log.path} has {len(log)} row(s), the final checkpoint recorded {len(saved[name]['rows'])}"
            if problem is not None:
                log.restore(saved[name])
                log.flush()
                print(f"warning: {problem}; restored it from the final checkpoint {path.name}", file=sys.stderr)
            continue
        problem = log.damage or (None if log.path.exists() else f"{log.path} is missing")
        if problem is None and name == "eval":
            last = int(float(log.rows[-1]["step"])) if log.rows else None
            if total is not None and (last is None or last < total):
                problem = f"{log.path} ends at step {last}, before the run's {total} steps"
        if problem is not None:
            raise RunError(f"{run_dir} is marked finished but {problem}, and it has no final checkpoint to restore "
                           "it from; move that folder away (or delete it) and run the command again")


def mark_interrupted(run_dir: Path, write_run_info: Callable[[str], None] | None) -> None:
    """Set run.json's status to ``interrupted``: through the loop's ``write_run_info`` when it exists, else by
    editing the file an earlier process wrote (an interrupt during set-up)."""
    if write_run_info is not None:
        write_run_info("interrupted")
        return
    info_file = run_dir / "run.json"
    if not info_file.exists():
        return  # nothing ran here yet: there is no status to correct
    try:
        info = json.loads(info_file.read_text())
    except json.JSONDecodeError:
        return  # written atomically, so never half-written; an unreadable one is treated as absent
    if info.get("status") != "finished":
        info.update(status="interrupted", updated_at=runfiles.now())
        runfiles.atomic_write_json(info_file, info)
