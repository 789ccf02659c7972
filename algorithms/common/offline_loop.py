"""Multi-task offline training on a dataset: gradient updates only, periodic evaluation of every task in its env.

The life cycle is the one both loops share (``lifecycle.py``): the same run folder, lock, config.yaml, run.json,
CSV logs, checkpoints with SHA-256 sidecars, atomic writes, SIGTERM handling and resume; :class:`OfflineTrainer`
supplies only what differs. ``steps`` counts gradient updates (run.json ``step_unit: update``), and so do
``eval_every``, ``checkpoint_every`` and ``log_every``. Each update samples ``offline.batch_size`` (released 1024)
sub-trajectories of H+1 steps from the dataset's memory-mapped cache (``offline.cache``); nothing acts in an
environment while training. Every ``eval_every`` updates each task of the dataset is evaluated in its real
environment (``eval_episodes`` episodes, seeds derived from (run seed, evaluation index, task id, episode) as the
online evaluation does), one eval.csv row per task with a ``task`` column (run-file format 3, results/README.md).
On a CPU, once the first updates and the first evaluation are timed, one stderr line (and run.json's
``cost_estimate``) gives their cost and the whole run's estimate, as the online loop does (``progress.py``).

As in the released TD-MPC2 offline trainer (``tdmpc2/trainer/offline_trainer.py``), a multi-task agent gets the
largest task's observation and action sizes, a learnable task embedding (``agent.task_dim``; 64 up to 30 tasks,
96 beyond, max-norm 1), per-task action masks and one discount per task from its episode length
(``TaskSpec.discount``). Checkpoints hold the agent, the cache sampler's RNG, the global RNGs, the counters and
a copy of the logs, so a run killed at any point and started again ends with the same eval.csv, bit for bit
on CPU.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from tqdm import tqdm

from algorithms.common import progress as progress_module
from algorithms.common import runfiles
from algorithms.common.agent import Agent
from algorithms.common.config import RunConfig
from algorithms.common.evaluation import evaluate_policy
from algorithms.common.health import PARAMETER_CHECK_EVERY, check_finite
from algorithms.common.lifecycle import RunLoop
from algorithms.common.memory import check_memory, estimate_memory
from algorithms.common.progress import OfflineCostMeter, Progress
from algorithms.common.runfolder import RunError
from algorithms.common.seeding import BUFFER, EVAL_EPISODES, derived_seed
from algorithms.registry import get_algorithm
from envs import make_env
from envs.registry import get_task
from offline import open_dataset
from offline.dataset import DatasetError, manifest_digest


class OfflineTrainer(RunLoop):
    """One offline run: the shared life cycle (resume, checkpoints, run files) with updates from a dataset."""

    step_key = "updates"
    unit = "update"
    progress_unit = "update"

    def __init__(self, cfg: RunConfig, run_dir: Path):
        super().__init__(cfg, run_dir)  # device, threads, global seeds
        self.dataset_path = Path(cfg.offline.dataset)
        self.dataset_digest = manifest_digest(self.dataset_path)
        self.dataset = open_dataset(self.dataset_path, seed=derived_seed(cfg.seed, BUFFER))
        self.tasks = list(self.dataset.tasks)
        self.specs = [get_task(task, "state") for task in self.tasks]
        self.spec = self.specs[0]
        self.eval_envs = []
        for i, task in enumerate(self.tasks):
            env = make_env(task, seed=cfg.seed, obs="state", shadows=cfg.render_shadows)
            sizes = (env.observation_space.shape[0], env.action_space.shape[0])
            if sizes != (self.dataset.obs_dims[i], self.dataset.action_dims[i]):
                raise DatasetError(f"task {task} of {self.dataset_path}: the dataset records observation/action "
                                   f"sizes {self.dataset.obs_dims[i]}/{self.dataset.action_dims[i]}, its "
                                   f"environment here has {sizes[0]}/{sizes[1]}")
            self.eval_envs.append(env)
        num_tasks = len(self.tasks)
        observation_space = gym.spaces.Box(-np.inf, np.inf, (self.dataset.obs_dim,), np.float32)
        action_space = gym.spaces.Box(-1.0, 1.0, (self.dataset.action_dim,), np.float32)
        algorithm = get_algorithm(cfg.algo).load()

        def build(device: torch.device) -> Agent:
            return algorithm.Agent(cfg.agent, self.spec, observation_space, action_space, device,
                                   num_tasks=num_tasks, task_id=0, action_dims=self.dataset.action_dims,
                                   discounts=[spec.discount for spec in self.specs])

        # before any weight is allocated: a preset that cannot fit stops here with the numbers, not in an OOM kill
        self.memory = estimate_memory(build, cfg.offline.batch_size, cfg.agent.horizon,
                                      dataset_mapped=self.dataset.mapped_bytes)
        check_memory(self.memory, self.device, cfg.memory_limit,
                     f"offline {cfg.algo} (agent.model_size={cfg.agent.model_size}, {num_tasks} tasks, "
                     f"offline.batch_size={cfg.offline.batch_size})")
        print(f"memory: {self.memory.describe()}", file=sys.stderr)
        self.agent: Agent = build(self.device)
        if not self.dataset.can_sample(self.agent.horizon):
            raise DatasetError(f"{self.dataset_path}: no episode has {self.agent.horizon} steps, the agent's "
                               f"horizon; use a dataset of longer episodes or a shorter agent.horizon")
        self.total = int(cfg.steps)
        self.eval_every = cfg.eval_every or max(self.total // 10, 1)
        self.checkpoint_every = cfg.checkpoint_every or self.eval_every
        self.start_bookkeeping({"updates": 0})
        self.cost = OfflineCostMeter()  # the first updates and evaluation: the cost estimate (report_cost)
        self.eval_log = runfiles.CsvLog(run_dir / "eval.csv", runfiles.OFFLINE_EVAL_COLUMNS)
        self.train_log = runfiles.CsvLog(run_dir / "train.csv", runfiles.OFFLINE_TRAIN_COLUMNS)

    # --- the life-cycle hooks (lifecycle.RunLoop) ------------------------------------------------------------
    def logs(self) -> dict[str, runfiles.CsvLog]:
        return {"eval": self.eval_log, "train": self.train_log}

    def sampler_state(self) -> dict[str, Any]:
        # the tasks and sizes the agent was built for: a fine-tuning run (algorithms/common/finetune.py) rebuilds
        # that shape from the checkpoint alone
        return {"dataset": self.dataset.state_dict(), "dataset_digest": self.dataset_digest, "tasks": self.tasks,
                "obs_dims": list(self.dataset.obs_dims), "action_dims": list(self.dataset.action_dims)}

    def load_sampler_state(self, state: dict[str, Any]) -> None:
        if state["dataset_digest"] != self.dataset_digest:
            raise RunError(f"{self.run_dir} was trained on another version of {self.dataset_path} (its manifest "
                           "changed since the checkpoint was written); resuming would not reproduce the run. Use "
                           "another --results-dir or name=..., or delete that folder")
        self.dataset.load_state_dict(state["dataset"])

    def run_identity(self) -> dict[str, Any]:
        return {"format_version": runfiles.OFFLINE_RUN_FORMAT_VERSION, "task": self.run_dir.parent.name,
                "tasks": self.tasks, "suite": "multi-task", "domain": "multi-task",
                "step_unit": runfiles.OFFLINE_STEP_UNIT, "steps_done": self.counters["updates"],
                "total_steps": self.total, "dataset": str(self.dataset_path.resolve()),
                "dataset_manifest_sha256": self.dataset_digest, "memory_estimate_bytes": self.memory.as_dict()}

    # --- the loop ----------------------------------------------------------------------------------------------
    def evaluate(self, progress: Progress | None = None) -> None:
        """Every task of the dataset in its real env, with the deterministic policy; one eval.csv row per task.

        The progress names the task (``task k/n``) and counts the episodes of that task; its rate and ETA are the
        whole evaluation's: with many tasks an evaluation is the longest phase of an offline run."""
        index, step = self.counters["evaluations"], self.counters["updates"]
        n_tasks, episodes = len(self.tasks), self.cfg.eval_episodes
        means = []
        started = time.perf_counter()
        for task_id, (task, env) in enumerate(zip(self.tasks, self.eval_envs)):
            if len(self.tasks) > 1:
                self.agent.set_task(task_id)
            report = None
            if progress is not None:
                detail = f"task {task_id + 1}/{n_tasks} {task}, evaluation at update {step:,}"
                part = (task_id + 1, n_tasks, "task")
                progress.count("evaluating", 0, episodes, "episode", detail, part)

                def report(done: int, detail: str = detail, part: tuple[int, int, str] = part) -> None:
                    progress.count("evaluating", done, episodes, "episode", detail, part)
            result = evaluate_policy(self.agent, env, episodes,
                                     lambda k, t=task_id: derived_seed(self.cfg.seed, EVAL_EPISODES, index, t, k),
                                     report)
            result.pop("returns")
            row = {"step": step, "task": task, **result}
            self.eval_log.append(row)
            for sink in self.sinks:
                sink.log(f"eval/{task}", step, row)
            means.append(result["episode_return"])
        self.eval_log.flush()
        self.counters["evaluations"] += 1
        self.last_eval_return = float(np.mean(means))
        self.cost.evaluation(time.perf_counter() - started)
        if self.cost.ready:
            self.report_cost()

    def report_cost(self) -> None:
        """On a CPU, once the first updates and the first evaluation are timed: one stderr line (and run.json's
        ``cost_estimate``) with ms per update and per evaluation, the whole run's estimate and, when large, the
        lighter settings. Nothing about the run changes: the user asked for these settings."""
        self.cost.reported = True
        if self.device.type != "cpu":  # CUDA timings are asynchronous and a GPU is what the defaults are for
            return
        c = self.counters
        at, evaluations = c["next_eval"], 1  # the evaluations to come: one per boundary before the end, the final
        while at < self.total:
            evaluations += 1
            at += self.eval_every
        cost = progress_module.offline_estimate(self.cost, self.total - c["updates"], evaluations, len(self.tasks),
                                                self.cfg.eval_episodes, self.wall_time)
        hint, hint_file = progress_module.lighter_settings(self.cfg.algo, self.cfg.agent, self.cfg.eval_episodes,
                                                           offline_batch_size=self.cfg.offline.batch_size)
        cost["large"] = cost["estimate_s"] > progress_module.LARGE_COST_S
        cost["lighter_settings"] = hint if cost["large"] else []
        tqdm.write(progress_module.offline_cost_line(self.cfg.algo, str(self.device), cost, hint, hint_file),
                   file=sys.stderr)
        self.write_run_info("running", cost_estimate=cost)

    def log_train_row(self, updates_per_s: float) -> None:
        timing = self.timing.means()
        row = {"step": self.counters["updates"], "updates": self.counters["updates"],
               "wall_time_s": round(self.wall_time, 3), "updates_per_s": round(updates_per_s, 2),
               "update_ms": timing.get("update_s", math.nan) * 1e3,
               "sample_ms": timing.get("sample_s", math.nan) * 1e3, **self.metrics.means()}
        self.train_log.append(row)
        self.train_log.flush()
        for sink in self.sinks:
            sink.log("train", row["step"], row)
        self.metrics.clear()
        self.timing.clear()

    def update_until(self, stop: int, progress: Progress) -> None:
        """Gradient updates until ``stop`` updates are done, logging train.csv every ``log_every`` updates."""
        c = self.counters
        progress.phase("updating", "gradient updates on the dataset")
        interval_start, interval_updates = time.perf_counter(), 0
        while c["updates"] < stop:
            tic = time.perf_counter()
            batch = self.dataset.sample(self.cfg.offline.batch_size, self.agent.horizon)
            toc = time.perf_counter()
            metrics = self.agent.update(batch)
            done = time.perf_counter()
            self.timing.add({"sample_s": toc - tic, "update_s": done - toc})
            self.cost.update(done - tic)
            c["updates"] += 1
            interval_updates += 1
            self.last_metrics = metrics
            check_finite(metrics, c["updates"], c["updates"],
                         self.agent if c["updates"] % PARAMETER_CHECK_EVERY == 0 else None, unit="update")
            self.metrics.add(metrics)
            if c["updates"] >= c["next_log"]:
                now = time.perf_counter()
                self.log_train_row(interval_updates / max(now - interval_start, 1e-9))
                interval_start, interval_updates = now, 0
                c["next_log"] += self.cfg.log_every
            progress.advance(1)
            if self.cost.ready:
                self.report_cost()
        rows = self.train_log.rows
        if c["updates"] >= self.total and c["updates"] > (int(float(rows[-1]["step"])) if rows else 0):
            # the run's last interval, shorter than log_every: its row before the final evaluation and checkpoint
            # (whose copy of the logs then holds it); a run shorter than log_every is not left header-only
            self.log_train_row(interval_updates / max(time.perf_counter() - interval_start, 1e-9))

    def progress_label(self) -> str:
        return f"{self.cfg.algo} offline {self.run_dir.parent.name} s{self.cfg.seed}"

    def advance(self, progress: Progress) -> None:
        c = self.counters
        self.update_until(min(c["next_eval"], c["next_checkpoint"], self.total), progress)
