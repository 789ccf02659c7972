"""The online loop (:class:`OnlineTrainer`): act in one task's environment, store, update, on the shared life cycle.

Evaluations and checkpoints happen only at episode boundaries, so a checkpoint never needs a simulator's
mid-episode state: every episode is reset with a seed derived from (run seed, episode index), and the checkpoint
(``lifecycle.py``) carries the agent, the replay buffer, every RNG state and the loop counters. The first acts and
updates are timed for the CPU cost line (``progress.py``); a fine-tuning run starts from a pretrained offline
checkpoint (``finetune.py``).
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
from tqdm import tqdm

from algorithms.common import progress as progress_module
from algorithms.common import runfiles
from algorithms.common.agent import Agent
from algorithms.common.buffer import ReplayBuffer
from algorithms.common.config import RunConfig
from algorithms.common.evaluation import evaluate_policy
from algorithms.common.health import PARAMETER_CHECK_EVERY, check_finite
from algorithms.common.lifecycle import RunLoop
from algorithms.common.progress import CostMeter, Progress
from algorithms.common.seeding import BUFFER, EVAL_EPISODES, SEED_ACTIONS, TRAIN_EPISODES, derived_seed
from algorithms.registry import get_algorithm
from envs import make_env
from envs.registry import TaskSpec, get_task


@dataclass
class Schedule:
    """The run's step arithmetic, resolved from the config and the task (env steps unless named agent)."""

    total: int
    eval_every: int
    checkpoint_every: int
    seed_env_steps: int

    @classmethod
    def of(cls, cfg: RunConfig, spec: TaskSpec) -> "Schedule":
        total = cfg.steps or spec.budget
        episode_env_steps = spec.episode_length * spec.action_repeat
        eval_every = cfg.eval_every or (100_000 if total >= 1_000_000 else max(total // 10, episode_env_steps))
        # fine-tuning skips seeding by default (METHOD.md: "start from pretrained world model + score net, skip
        # seeding"); from scratch, the task's max(1000, 5 x episode length)
        default = 0 if cfg.is_finetune else spec.seed_steps
        seed_steps = cfg.seed_steps if cfg.seed_steps is not None else default
        return cls(total=total, eval_every=eval_every, checkpoint_every=cfg.checkpoint_every or eval_every,
                   seed_env_steps=seed_steps * spec.action_repeat)


class OnlineTrainer(RunLoop):
    """One online run: episodes in the task's environment, updates from the replay buffer."""

    def __init__(self, cfg: RunConfig, run_dir: Path):
        self.spec = get_task(cfg.task, cfg.obs)
        self.schedule = Schedule.of(cfg, self.spec)
        self.total = self.schedule.total
        self.eval_every = self.schedule.eval_every
        self.checkpoint_every = self.schedule.checkpoint_every
        super().__init__(cfg, run_dir)  # device, threads, global seeds: before the environments are made
        self.env = make_env(cfg.task, seed=cfg.seed, obs=cfg.obs, shadows=cfg.render_shadows)
        self.eval_env = make_env(cfg.task, seed=cfg.seed, obs=cfg.obs, shadows=cfg.render_shadows)
        self.agent: Agent
        self.pretrained = None
        self.finetune_task = None
        if cfg.is_finetune:  # offline-to-online: the pretrained multi-task shape (algorithms/common/finetune.py)
            from algorithms.common import finetune

            self.agent, self.pretrained, self.finetune_task = finetune.build_agent(cfg, self.spec, self.env,
                                                                                   self.device)
            obs_dim = self.agent.observation_space.shape[0]
            self.env = finetune.PaddedObservationEnv(self.env, obs_dim)
            self.eval_env = finetune.PaddedObservationEnv(self.eval_env, obs_dim)
        else:
            algorithm = get_algorithm(cfg.algo).load()
            self.agent = algorithm.Agent(cfg.agent, self.spec, self.env.observation_space,
                                         self.env.action_space, self.device)
        space = self.env.observation_space
        # the agent's action size: a fine-tuning agent's is the pretrained (padded) one, wider than the env's
        self.buffer = ReplayBuffer(cfg.buffer_size, space.shape, space.dtype, self.agent.action_space.shape[0],
                                   seed=derived_seed(cfg.seed, BUFFER),
                                   include_open_episode=self.agent.replay_open_episode)
        self.action_rng = np.random.default_rng(derived_seed(cfg.seed, SEED_ACTIONS))
        self.start_bookkeeping({"env_step": 0, "episode": 0, "updates": 0, "seeding_done": False})
        self.cost = CostMeter()  # the first acts and updates of training: the cost estimate (report_cost)
        self.eval_log = runfiles.CsvLog(run_dir / "eval.csv", runfiles.EVAL_COLUMNS)
        self.train_log = runfiles.CsvLog(run_dir / "train.csv", runfiles.TRAIN_COLUMNS)
        self.episode_log = runfiles.CsvLog(run_dir / "episodes.csv", runfiles.EPISODE_COLUMNS)

    # --- the life-cycle hooks (lifecycle.RunLoop) --------------------------------------------------------------
    def finetune_info(self) -> dict[str, Any]:
        """run.json's record of the pretrained start (results/README.md): none for a run from scratch."""
        if self.finetune_task is None:
            return {}
        return {"init_checkpoint": str(self.pretrained.path), "init_checkpoint_sha256": self.pretrained.sha256,
                "init_pretrained_tasks": self.pretrained.tasks, "init_task_id": self.finetune_task.task_id,
                "init_new_task": self.finetune_task.new,
                "init_buffer_episodes": self.counters.get("init_buffer_episodes", 0)}

    def start_from_pretrained(self) -> None:
        """A fresh fine-tuning run: the pretrained weights, and the replay seeded from ``init.seed_buffer_from``."""
        from algorithms.common import finetune

        finetune.load_weights(self.agent, self.pretrained, self.finetune_task)
        episodes = 0
        if self.cfg.init.seed_buffer_from is not None:
            episodes = finetune.seed_buffer(self.buffer, self.cfg.init.seed_buffer_from, self.spec.name,
                                            self.agent.observation_space.shape[0], self.agent.action_space.shape[0])
        self.counters["init_buffer_episodes"] = episodes  # checkpointed: run.json keeps it after a resume

    def padded_action(self, action: np.ndarray) -> np.ndarray:
        """The action as the replay stores it: zero-padded to the agent's action size (fine-tuning's pretrained
        padding, as the offline datasets pad); unchanged otherwise."""
        width = self.buffer.action.shape[1]
        return action if action.shape[-1] == width else np.pad(action, (0, width - action.shape[-1]))

    def run_identity(self) -> dict[str, Any]:
        return {"format_version": runfiles.RUN_FORMAT_VERSION, **self.finetune_info(), "task": self.spec.name,
                "suite": self.spec.suite, "domain": self.spec.domain,
                "env_steps_done": self.counters["env_step"], "total_env_steps": self.schedule.total}

    def logs(self) -> dict[str, runfiles.CsvLog]:
        return {"eval": self.eval_log, "train": self.train_log, "episodes": self.episode_log}

    def sampler_state(self) -> dict[str, Any]:
        return {"buffer": self.buffer.state_dict(), "action_rng": self.action_rng.bit_generator.state}

    def load_sampler_state(self, state: dict[str, Any]) -> None:
        self.buffer.load_state_dict(state["buffer"])
        self.action_rng.bit_generator.state = state["action_rng"]

    # --- the loop ------------------------------------------------------------------------------------------
    def evaluate(self, progress: Progress | None = None) -> None:
        # weights checked first: a policy of NaNs would fail inside the evaluation with a less useful message
        check_finite(self.last_metrics, self.counters["env_step"], self.counters["updates"], self.agent)
        index = self.counters["evaluations"]
        n = self.cfg.eval_episodes
        report = None
        if progress is not None:
            detail = f"evaluation at {self.step_key.replace('_', ' ')} {self.counters[self.step_key]:,}"
            progress.count("evaluating", 0, n, "episode", detail)

            def report(done: int) -> None:
                progress.count("evaluating", done, n, "episode", detail)
        result = evaluate_policy(self.agent, self.eval_env, n,
                                 lambda k: derived_seed(self.cfg.seed, EVAL_EPISODES, index, k), report)
        result.pop("returns")
        row = {"step": self.counters["env_step"], **result}
        self.eval_log.append(row)
        self.eval_log.flush()
        for sink in self.sinks:
            sink.log("eval", row["step"], row)
        self.counters["evaluations"] += 1
        self.last_eval_return = result["episode_return"]

    def log_train_row(self, steps_per_s: float) -> None:
        timing = self.timing.means()
        row = {"step": self.counters["env_step"], "updates": self.counters["updates"],
               "episodes": self.counters["episode"], "wall_time_s": round(self.wall_time, 3),
               "env_steps_per_s": round(steps_per_s, 2),
               "update_ms": timing.get("update_s", math.nan) * 1e3, "act_ms": timing.get("act_s", math.nan) * 1e3,
               **self.metrics.means()}
        self.train_log.append(row)
        self.train_log.flush()  # so that progress can be watched; resume truncates what a checkpoint did not see
        for sink in self.sinks:
            sink.log("train", row["step"], row)
        self.metrics.clear()
        self.timing.clear()

    def pretraining_report(self, progress: Progress) -> Callable[[int, int], None]:
        """The callback of ``agent.on_seeding_done``: the pretraining phase's count (k/N updates), and each
        update's duration for the cost estimate (the callback follows each update). No updates (a fine-tuning run
        without seed steps: N = 0) is no pretraining phase."""
        last = time.perf_counter()

        def report(done: int, total: int) -> None:
            nonlocal last
            now = time.perf_counter()
            if done:
                self.cost.update(now - last)
            last = now
            if total > 0:
                progress.count("pretraining", done, total, "update", "updates on the seed data")
        return report

    def log_last_interval(self, steps_per_s: float) -> None:
        """At the end of the run, train.csv's row of the last interval when it is shorter than ``log_every`` (a
        run of fewer steps would otherwise leave train.csv header-only); written before the final evaluation and
        checkpoint, so the checkpoint's copy of the logs holds it. Nothing is trained or drawn for it."""
        rows = self.train_log.rows
        if self.counters["env_step"] > (int(float(rows[-1]["step"])) if rows else 0):
            self.log_train_row(steps_per_s)

    def remaining_evaluations(self) -> int:
        """Evaluations still to come: one per ``eval_every`` boundary before the end, and the final one."""
        total, every = self.schedule.total, self.schedule.eval_every
        at, n = self.counters["next_eval"], 1
        while at < total:  # approximate: an evaluation waits for the episode boundary at or past its step
            n += 1
            at += every
        return n

    def report_cost(self) -> None:
        """On a CPU, once the first acts and updates of training are timed: one stderr line (and run.json's
        ``cost_estimate``) with the measured cost, the whole run's estimate and, when large, the lighter settings.
        Nothing about the run changes: the user asked for these settings."""
        self.cost.reported = True
        if self.device.type != "cpu":  # CUDA timings are asynchronous and a GPU is what the defaults are for
            return
        c, schedule, repeat = self.counters, self.schedule, self.spec.action_repeat
        # a run ends at the first episode boundary at or past its total (fixed-length episodes: a multiple of them)
        episode = self.spec.episode_length * repeat
        end = -(-schedule.total // episode) * episode
        remaining = -(-(end - max(c["env_step"], schedule.seed_env_steps)) // repeat)
        cost = progress_module.estimate(self.cost, max(remaining, 0), self.remaining_evaluations(),
                                        self.cfg.eval_episodes * self.spec.episode_length, self.wall_time)
        hint, hint_file = progress_module.lighter_settings(self.cfg.algo, self.cfg.agent, self.cfg.eval_episodes)
        cost["large"] = cost["estimate_s"] > progress_module.LARGE_COST_S
        cost["lighter_settings"] = hint if cost["large"] else []
        tqdm.write(progress_module.cost_line(self.cfg.algo, str(self.device), cost, hint, hint_file, "--steps"),
                   file=sys.stderr)
        self.write_run_info("running", cost_estimate=cost)

    def run_episode(self, progress: Progress) -> None:
        c, spec, schedule = self.counters, self.spec, self.schedule
        obs, _ = self.env.reset(seed=derived_seed(self.cfg.seed, TRAIN_EPISODES, c["episode"]))
        self.agent.reset()
        self.buffer.add_first(obs)
        episode_return, length, done, info = 0.0, 0, False, {}
        interval_start, interval_steps = time.perf_counter(), 0
        while not done:
            if c["env_step"] < schedule.seed_env_steps:
                progress.phase("seeding", "random actions", end=schedule.seed_env_steps)
                action = self.action_rng.uniform(-1.0, 1.0, self.env.action_space.shape).astype(np.float32)
            else:
                progress.phase("training")
                tic = time.perf_counter()
                action = self.agent.act(obs, eval_mode=False)
                elapsed = time.perf_counter() - tic
                self.timing.add({"act_s": elapsed})
                self.cost.act(elapsed)
            obs, reward, terminated, truncated, info = self.env.step(action)
            self.buffer.add(self.padded_action(action), reward, terminated, obs)
            c["env_step"] += spec.action_repeat
            progress.advance(spec.action_repeat)  # before the updates: a phase they start begins at this step
            interval_steps += spec.action_repeat
            episode_return += float(reward)
            length += 1
            done = terminated or truncated
            if done:  # the released code adds it one step later, before that step's update: one update apart
                self.buffer.end_episode()
            if c["env_step"] >= schedule.seed_env_steps and self.buffer.can_sample(self.agent.horizon):
                if not c["seeding_done"]:
                    c["seeding_done"] = True
                    metrics = self.agent.on_seeding_done(
                        self.buffer, schedule.seed_env_steps // spec.action_repeat,
                        report=self.pretraining_report(progress))
                    check_finite(metrics, c["env_step"], c["updates"], self.agent)
                    progress.phase("training")
                tic = time.perf_counter()
                metrics = self.agent.update(self.buffer)
                elapsed = time.perf_counter() - tic
                self.timing.add({"update_s": elapsed})
                self.cost.update(elapsed)
                c["updates"] += 1
                self.last_metrics = metrics
                check_finite(metrics, c["env_step"], c["updates"],
                             self.agent if c["updates"] % PARAMETER_CHECK_EVERY == 0 else None)
                self.metrics.add(metrics)
                if self.cost.ready:
                    self.report_cost()
            if c["env_step"] >= c["next_log"]:
                now = time.perf_counter()
                self.log_train_row(interval_steps / max(now - interval_start, 1e-9))
                interval_start, interval_steps = now, 0
                c["next_log"] += self.cfg.log_every
        if c["env_step"] >= schedule.total:  # the run's last episode: the run ends at its boundary
            self.log_last_interval(interval_steps / max(time.perf_counter() - interval_start, 1e-9))
        success = info.get("success")
        self.episode_log.append({"step": c["env_step"], "episode": c["episode"], "episode_return": episode_return,
                                 "success": None if success is None else float(success), "episode_length": length})
        c["episode"] += 1

    def warn_if_never_updates(self) -> None:
        """A run whose steps end before its seed steps do only ever acts at random: say so before it starts (the
        obvious first command, ``--steps 3000`` on cartpole with its 2,500 seed agent steps, is such a run)."""
        schedule, repeat = self.schedule, self.spec.action_repeat
        if schedule.total > schedule.seed_env_steps:
            return
        seed_agent = schedule.seed_env_steps // repeat
        what = ("never updates the agent nor acts with it" if schedule.total < schedule.seed_env_steps else
                "updates the agent only at its last step and never acts with it")
        example = max(schedule.total // repeat // 10, 1)
        print(f"warning: this run {what}: its {schedule.total:,} env steps end before its seed steps do "
              f"(seed_steps={seed_agent:,} agent steps x action repeat {repeat} = {schedule.seed_env_steps:,} env "
              f"steps of random actions, the task's default unless set). Lower seed_steps (e.g. seed_steps={example}) "
              f"or raise --steps above {schedule.seed_env_steps:,}", file=sys.stderr)

    def before_loop(self, resumed: bool) -> None:
        if not resumed and self.pretrained is not None:  # a resume has loaded the run's own checkpoint instead
            self.start_from_pretrained()

    def before_progress(self) -> None:
        self.warn_if_never_updates()

    def progress_label(self) -> str:
        return f"{self.cfg.algo} {self.spec.name} s{self.cfg.seed}"

    def advance(self, progress: Progress) -> None:
        self.run_episode(progress)
