"""The life cycle both loops share (:class:`RunLoop`): checkpoints, resume bit for bit, run.json, the CSV logs
and the boundary loop (evaluate, then checkpoint, then train until the next boundary).

A loop (``online_loop.py``, ``offline_loop.py``) builds its agent and data, fills in the counters, and says how to
advance to the next boundary (an episode online, a stretch of updates offline), how to evaluate and what run.json
records about it. Everything else happens here, the same way for both: a checkpoint carries the agent, what the
updates sample from, every RNG state, the counters and a copy of the logs, so that a run killed at any point and
started again ends with the same eval.csv, bit for bit on CPU.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path
from typing import Any

import torch

from algorithms.common import runfiles
from algorithms.common.agent import Agent
from algorithms.common.checkpoint import CheckpointManager
from algorithms.common.config import RunConfig, config_hash, dump_yaml, to_dict
from algorithms.common.configure import semantic_differences
from algorithms.common.device import resolve_device
from algorithms.common.health import check_finite, non_finite_in_state
from algorithms.common.metrics import MetricAccumulator
from algorithms.common.progress import Progress
from algorithms.common.runfolder import ConfigMismatchError, RunError
from algorithms.common.seeding import rng_state, seed_everything, set_rng_state
from algorithms.common.sinks import make_sinks
from algorithms.registry import get_algorithm


class RunLoop:
    """One run on the shared life cycle; a subclass supplies the agent, the data and the hooks below."""

    step_key = "env_step"
    """The counter that names checkpoints and schedules the run (env steps online, gradient updates offline)."""
    unit = "env step"
    """That counter's unit, as messages name it."""
    progress_unit = "step"

    agent: Agent
    total: int
    eval_every: int
    checkpoint_every: int

    def __init__(self, cfg: RunConfig, run_dir: Path):
        self.cfg = cfg
        self.run_dir = run_dir
        self.device = resolve_device(cfg.device)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        seed_everything(cfg.seed)

    def start_bookkeeping(self, counters: dict[str, Any]) -> None:
        """The counters (the loop's, plus the boundaries every loop schedules) and the accumulators, timers and
        checkpoints of a run that has not started; ``resume`` then loads them from a checkpoint."""
        self.counters = {**counters, "evaluations": 0, "next_eval": 0, "next_checkpoint": self.checkpoint_every,
                         "next_log": self.cfg.log_every}
        self.metrics = MetricAccumulator()
        self.timing = MetricAccumulator()
        self.checkpoints = CheckpointManager(self.run_dir / "checkpoints", keep=self.cfg.keep_checkpoints)
        self.elapsed_before = 0.0
        self.started = time.perf_counter()
        self.last_eval_return: float | None = None
        self.last_metrics: dict[str, float] = {}  # the latest update's, for a non-finite weight's message
        self.run_info: dict[str, Any] = {}
        self.sinks: list = []  # created in run(): nothing is written to the run folder before the agent builds

    # --- what a loop supplies ----------------------------------------------------------------------------------
    def logs(self) -> dict[str, runfiles.CsvLog]:
        """The run's CSV logs by checkpoint name (``csv_rows``), each cut back to its row count on resume."""
        raise NotImplementedError

    def sampler_state(self) -> dict[str, Any]:
        """Checkpoint entries beside agent, counters, logs and RNGs: what the updates sample from."""
        raise NotImplementedError

    def load_sampler_state(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def run_identity(self) -> dict[str, Any]:
        """run.json's entries that describe this run (format, task(s), progress in its step unit, …)."""
        raise NotImplementedError

    def evaluate(self, progress: Progress | None = None) -> None:
        """Evaluate the policy, append eval.csv's row(s), set ``last_eval_return``, count the evaluation."""
        raise NotImplementedError

    def advance(self, progress: Progress) -> None:
        """Train until the next boundary (an episode's end online, the next evaluation or checkpoint offline)."""
        raise NotImplementedError

    def progress_label(self) -> str:
        raise NotImplementedError

    def before_loop(self, resumed: bool) -> None:
        """After resume, before the first boundary: e.g. a fine-tuning run loads its pretrained weights."""

    def before_progress(self) -> None:
        """After run.json says ``running``: e.g. a warning about the run's settings."""

    # --- bookkeeping -------------------------------------------------------------------------------------------
    @property
    def wall_time(self) -> float:
        return self.elapsed_before + time.perf_counter() - self.started

    def write_run_info(self, status: str, **extra: Any) -> None:
        self.run_info.update({
            **self.run_identity(), "status": status, "algo": self.cfg.algo, "name": self.cfg.run_name,
            "seed": self.cfg.seed, "config_hash": config_hash(self.cfg), "wall_time_s": round(self.wall_time, 3),
            "device": str(self.device), "updated_at": runfiles.now(), **extra,
        })
        runfiles.atomic_write_json(self.run_dir / "run.json", self.run_info)

    def flush_logs(self) -> None:
        for log in self.logs().values():
            log.flush()

    def save_checkpoint(self) -> None:
        # never a checkpoint from a non-finite state: a resume would start from it
        check_finite(self.last_metrics, self.counters[self.step_key], self.counters["updates"], self.agent,
                     self.unit)
        self.flush_logs()
        state = {
            "counters": dict(self.counters), "agent": self.agent.state_dict(), **self.sampler_state(),
            "rng": rng_state(),
            "csv_rows": {name: len(log) for name, log in self.logs().items()},
            # what the logs held: a resume restores a log that was damaged or cut since (run-file integrity)
            "logs": {name: log.state() for name, log in self.logs().items()},
            "metrics": self.metrics.state(), "timing": self.timing.state(), "wall_time_s": self.wall_time,
            "config": to_dict(self.cfg),
        }
        self.checkpoints.save(state, self.counters[self.step_key])
        self.write_run_info("running")

    def check_config(self, trained: dict[str, Any], path: Path) -> None:
        """Raise ConfigMismatchError naming every key in which this run's config differs from ``trained``."""
        diffs = semantic_differences(trained, to_dict(self.cfg))
        if diffs:
            raise ConfigMismatchError(
                f"{self.run_dir} holds a run with another config ({'; '.join(diffs)}; recorded in checkpoint "
                f"{path.name}); use another --results-dir or name=..., or delete that folder")

    def restore_config_file(self, config: dict[str, Any], from_checkpoint: bool) -> None:
        """Write config.yaml from ``config`` if the run folder lacks it (a new run, or one that lost the file)."""
        config_file = self.run_dir / "config.yaml"
        if not config_file.exists():
            runfiles.atomic_write_text(config_file, dump_yaml(config))
            if from_checkpoint:
                print(f"note: {config_file} was missing; written from the config the run was trained with",
                      file=sys.stderr)

    def reconcile_logs(self, state: dict[str, Any], path: Path) -> None:
        """Cut each log back to what checkpoint ``path`` recorded, or restore it from there when the file lost
        rows, changed or cannot be read (saying so, naming the file)."""
        saved = state.get("logs")
        for name, log in self.logs().items():
            if saved is None:  # a checkpoint from before logs were kept in it: only row counts to check
                rows = state["csv_rows"][name]
                if log.damage or len(log) < rows:
                    problem = log.damage or f"{log.path} has {len(log)} row(s), checkpoint {path.name} recorded {rows}"
                    raise RunError(f"{problem}; this older checkpoint holds no copy to restore it from: move "
                                   f"{log.path.name} back, or delete {self.run_dir} to start over")
                log.truncate(rows)
                continue
            problem = log.disagreement(saved[name])
            if problem is None:
                log.truncate(len(saved[name]["rows"]))
                continue
            log.restore(saved[name])
            log.flush()
            print(f"warning: {problem}; restored its {len(log)} row(s) from checkpoint {path.name} (later rows are "
                  "written again as the run resumes)", file=sys.stderr)

    def resume(self) -> bool:
        """Continue from the newest usable checkpoint; archive stale files when there is none."""
        state, path, problems = self.checkpoints.load_latest(reject=non_finite_in_state)
        for problem in problems:
            print(f"warning: {problem}; falling back to an older checkpoint", file=sys.stderr)
        if state is not None:
            self.check_config(state["config"], path)  # before anything is loaded or truncated
        self.restore_config_file(state["config"] if state is not None else to_dict(self.cfg), state is not None)
        if state is None:
            stale = list(self.logs().values())
            if any(len(log) or log.damage for log in stale) or problems:
                archive = self.run_dir / "restarts" / time.strftime("%Y%m%d-%H%M%S")
                archive.mkdir(parents=True, exist_ok=True)
                for name in (*(log.path.name for log in stale), "run.json", "checkpoints"):
                    if (self.run_dir / name).exists():
                        shutil.move(str(self.run_dir / name), archive / name)
                print(f"warning: no usable checkpoint; starting over (earlier files kept in {archive})",
                      file=sys.stderr)
                for log in stale:
                    log.restore({"columns": log.columns, "rows": []})
            return False
        self.agent.load_state_dict(state["agent"])
        self.load_sampler_state(state)
        set_rng_state(state["rng"])
        self.counters.update(state["counters"])  # in place: run() holds a reference
        self.metrics.load(state["metrics"])
        self.timing.load(state["timing"])
        self.elapsed_before = state["wall_time_s"]
        self.reconcile_logs(state, path)
        if self.eval_log.rows:
            self.last_eval_return = float(self.eval_log.rows[-1]["episode_return"])
        print(f"resuming from {path} at {self.unit} {self.counters[self.step_key]}", file=sys.stderr)
        return True

    def versions(self) -> dict[str, str]:
        """run.json's ``versions``: the libraries', and a plug-in algorithm's package and version (a built-in
        algorithm's version is the harness's commit, ``git_commit``)."""
        versions = runfiles.package_versions()
        entry = get_algorithm(self.cfg.algo)
        if not entry.builtin:
            versions[entry.package] = entry.version or "?"
        return versions

    # --- the loop ----------------------------------------------------------------------------------------------
    def run(self) -> Path:
        """Resume (or start), then pass boundaries until the total: evaluate when due (and at the end), then
        checkpoint when due (after the evaluation, so that a checkpoint, the final one above all, holds its rows),
        then train to the next boundary."""
        c, key = self.counters, self.step_key
        resumed = self.resume()
        self.before_loop(resumed)
        self.sinks = make_sinks(self.cfg.loggers, self.run_dir,
                                f"{self.cfg.run_name}-{self.run_dir.parent.name}-{self.cfg.seed}", to_dict(self.cfg))
        self.write_run_info("running", started_at=runfiles.now(), resumed=resumed,
                            git_commit=runfiles.git_commit(), versions=self.versions(),
                            **runfiles.host_info())
        self.before_progress()
        with Progress(self.total, c[key], self.progress_unit, self.progress_label(),
                      enabled=self.cfg.progress) as progress:
            last_checkpoint = c[key] if resumed else -1
            while True:
                finished = c[key] >= self.total
                if c[key] >= c["next_eval"] or finished:
                    c["next_eval"] = max(c["next_eval"], c[key] - c[key] % self.eval_every)
                    c["next_eval"] += self.eval_every
                    self.evaluate(progress)
                    progress.postfix(eval_return=f"{self.last_eval_return:.1f}")
                due = c[key] >= c["next_checkpoint"]
                if (due or finished) and c[key] != last_checkpoint:
                    if due:
                        c["next_checkpoint"] += self.checkpoint_every
                    self.save_checkpoint()
                    last_checkpoint = c[key]
                if finished:
                    break
                self.advance(progress)
        self.flush_logs()
        self.write_run_info("finished", finished_at=runfiles.now())
        for sink in self.sinks:
            sink.close()
        return self.run_dir
