"""Differential table test of the online run loop's schedule against the authors' released online trainers.

This file owns the comparison of *when things happen* in our online loop (``algorithms/common/online_loop.py``,
``OnlineTrainer.run``) with the released ``trainer/online_trainer.py`` of MBDPO (github.com/Edmond1Cheng/MBDPO @
5ff5a06) and of TD-MPC2 (github.com/nicklashansen/tdmpc2 @ e9f5932), loaded unmodified from
``shared/reference/released-code`` through ``tests/differential/released.py`` (never copied here):

* the seed steps (random actions) and the default number of them;
* the pretraining updates at the end of seeding: at which agent step, how many, on how many replayed episodes;
* the updates per agent step afterwards, the run's length and its total number of updates;
* when an episode enters the replay (agent step; updates made between its last step and its entry) and whether an
  update can sample the episode in progress (FIDELITY.md D8);
* the evaluations: at which agent steps, how many episodes of how many steps, with the deterministic policy, and how
  many updates precede each;
* the step written for each evaluation (CSV ``step`` column): released agent steps, ours env steps = agent steps ×
  action repeat (FIDELITY.md D1; README.md "Training", results/README.md).

Not here: the agents' numbers (other differential tests), the run files' format and resume
(tests/test_run_lifecycle.py), the environments (tests/differential/test_envs.py).

How. Each loop runs short schedules (``SCENARIOS``: episodes of 10 agent steps, action repeat 2 and 1, seeding ending
on and off an episode boundary, evaluations on and off the episode grid) with stand-ins whose every call is recorded
in one event stream:

* released: ``OnlineTrainer.train()`` as released, given a stub env with the released ``TensorWrapper`` interface
  (torch tensors, ``rand_act``, ``(obs, reward, done, info)`` with ``info["terminated"]``/``["success"]``, done after
  ``episode_length`` agent steps as its ``Timeout`` wrapper), a stub agent (zero actions; ``update`` records), a stub
  buffer (``add`` records the episode) and a stub logger (records what it logs); its config is the released YAML with
  the run's keys set. MBDPO's trainer also writes its reward CSV (``save_reward_csv``), read back for the step column.
* ours: ``OnlineTrainer(cfg, run_dir).run()`` with three names of ``algorithms.common.online_loop`` monkeypatched: the
  task spec (``get_task``: a registered spec with the scenario's episode length and action repeat), the environment
  factory (``make_env``: a gymnasium stub env, truncated after ``episode_length`` agent steps) and the algorithm entry
  (``get_algorithm``): our real TD-MPC2/MBDPO ``Agent`` class, built as the run builds it (so its ``horizon``,
  ``replay_open_episode`` and ``on_seeding_done`` are the real ones), with only ``act`` (zeros) and ``update``
  (samples the real replay buffer and records) replaced. The run's own eval.csv gives the step column.

Both streams are reduced by one function (:func:`measure`) to the same quantities, and ``test_schedule_table``
asserts every row of one table (quantity, released, ours, relation): equal, or — where ours departs on purpose — the
documented relation, the row naming the document; the rows marked "README Departures (seeding boundary)" hold the
relation this file measured for differences no document listed before it (now a row of README.md's "Departures from
the released code", not fixed yet): a change in either loop fails the row. On failure the whole table is printed. The default number of seed steps is compared apart
from the runs: the released ``make_env`` cannot run under gymnasium 1.x, so its ``cfg.seed_steps = ...`` statement
is read from the released file and evaluated for each episode length our registry holds.

Also here: ``test_released_trainers_share_the_schedule`` (the two released trainers give the same event stream, so
one table per tree compares the same schedule), and two checks that the measurement can fail
(``test_measure_sees_a_changed_schedule``; ``test_open_episode_row_can_fail``: with ``replay_open_episode=true``
our updates are seen sampling the episode in progress).

The released MBDPO tree lacks ``common/replay_buffer_saver.py``, which its online trainer imports and calls
(``ReplayBufferSaver(cfg)``, ``add_episode`` at each episode's entry into the replay, ``finish``; judging by its
config keys ``save_replay``/``replay_save_dir``, off by default, it saves the replay to files): the temporary copy
gets a no-op stand-in (``_SAVER_STANDIN``), which takes no part in the schedule.
"""

from __future__ import annotations

import ast
import csv
import dataclasses
import types
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym
import numpy as np
import pytest
import torch

from algorithms.common import online_loop as trainer_module
from algorithms.common.config import RunConfig
from algorithms.registry import get_algorithm
from envs.registry import TASKS, get_task
from tests.differential.released import cpu_copy, import_released, require_released

OBS_DIM, ACTION_DIM = 3, 2
"""Stub observation: (episode id, step in the episode, 0); zero actions of 2 dimensions."""
SAMPLE_BATCH = 256
"""Sub-trajectories our stub update draws from the real replay to see which episodes it can sample."""
BASE_TASK = "cartpole-balance"
"""The registered task whose spec (with the scenario's episode length and action repeat) our loop is given."""


@dataclass(frozen=True)
class Scenario:
    name: str
    episode_length: int  # agent steps
    action_repeat: int
    seed_steps: int  # agent steps (both loops' unit)
    steps: int  # agent steps: the released cfg.steps; ours gets steps × action_repeat env steps
    eval_every: int  # agent steps: the released cfg.eval_freq; ours gets eval_every × action_repeat env steps
    eval_episodes: int


SCENARIOS = (
    # seeding ends on an episode boundary, evaluations on the episode grid, action repeat 2 (DMControl-like)
    Scenario("aligned-repeat2", episode_length=10, action_repeat=2, seed_steps=30, steps=100, eval_every=20,
             eval_episodes=2),
    # seeding ends mid-episode, evaluations off the episode grid, a last step off the evaluation grid, repeat 1
    Scenario("unaligned-repeat1", episode_length=10, action_repeat=1, seed_steps=25, steps=70, eval_every=15,
             eval_episodes=3),
)
TREES = ("mbdpo", "tdmpc2")


# --- the event stream both loops write -------------------------------------------------------------------------
@dataclass
class Recorder:
    """Every schedule-relevant call, in order. Events:

    ``("transition", source, episode, t)`` one agent step of an env, source ``random``/``agent`` (training) or
    ``eval``; ``("update", phase, open_episode_sampled)``; ``("replay", episode, transitions)`` an episode enters
    the replay; ``("eval_row", step)`` the step an evaluation is written with.
    """

    events: list[tuple] = field(default_factory=list)
    pending: str | None = None  # the source of the next env step (set by act / rand_act)
    phase: str = "update"  # ours: "pretrain" inside Agent.on_seeding_done

    def note(self, *event: Any) -> None:
        self.events.append(event)

    def transition(self, episode: int, t: int) -> None:
        source, self.pending = self.pending or "random", None  # ours draws seed actions from its own RNG
        self.note("transition", source, episode, t)


# --- the released loop ------------------------------------------------------------------------------------------
_SAVER_STANDIN = '''"""Test stand-in (tests/differential/test_schedule.py): the released tree lacks this module."""


class ReplayBufferSaver:
    def __init__(self, cfg):
        pass

    def add_episode(self, episode_td):
        pass

    def finish(self):
        pass
'''


class ReleasedStubEnv:
    """The released ``TensorWrapper(Timeout(...))`` interface: torch observations, done after ``length`` steps."""

    def __init__(self, recorder: Recorder, length: int):
        self.recorder, self.length = recorder, length
        self.episode, self.t = -1, 0

    def _obs(self) -> torch.Tensor:
        return torch.tensor([float(self.episode), float(self.t), 0.0])

    def rand_act(self) -> torch.Tensor:
        self.recorder.pending = "random"
        return torch.zeros(ACTION_DIM)

    def reset(self, task_idx=None) -> torch.Tensor:
        self.episode, self.t = self.episode + 1, 0
        return self._obs()

    def step(self, action: torch.Tensor):
        self.t += 1
        self.recorder.transition(self.episode, self.t)
        info = defaultdict(float, success=0.0, terminated=torch.tensor(0.0))
        return self._obs(), torch.tensor(1.0), self.t >= self.length, info


class ReleasedStubBuffer:
    """Records each episode the released trainer adds; ``add`` returns the episode count, as the released buffer."""

    def __init__(self, recorder: Recorder):
        self.recorder, self.episodes = recorder, []

    def add(self, td) -> int:
        episode = int(td["obs"][0, 0])
        self.episodes.append(episode)
        self.recorder.note("replay", episode, td.shape[0] - 1)  # T + 1 rows: the first holds the reset obs only
        return len(self.episodes)


class ReleasedStubAgent:
    model = "stub agent (tests/differential/test_schedule.py)"  # the released Trainer prints agent.model

    def __init__(self, recorder: Recorder, env: ReleasedStubEnv):
        self.recorder, self.env = recorder, env

    def act(self, obs, t0=False, eval_mode=False, task=None) -> torch.Tensor:
        self.recorder.pending = "eval" if eval_mode else "agent"
        return torch.zeros(ACTION_DIM)

    def update(self, buffer: ReleasedStubBuffer) -> dict[str, float]:
        # the only episodes an update can sample are those added; the env's current one is the training episode,
        # in progress unless this update follows its last step
        in_progress = self.env.episode if self.env.t < self.env.length else None
        self.recorder.note("update", "update", in_progress in buffer.episodes)
        return {}


class ReleasedStubLogger:
    def __init__(self, recorder: Recorder):
        self.recorder, self.logged = recorder, []

    def log(self, metrics: dict, category: str) -> None:
        self.logged.append((category, dict(metrics)))
        if category == "eval":
            self.recorder.note("eval_row", int(metrics["step"]))

    def save_agent(self, agent, identifier=None) -> None:
        self.recorder.note("save_agent", identifier)

    def finish(self, agent=None) -> None:
        pass


@pytest.fixture(scope="module")
def released(tmp_path_factory) -> dict[str, types.SimpleNamespace]:
    """Per tree: its ``OnlineTrainer`` class and the folder of its config YAML (a CPU copy of the released code)."""
    require_released()
    folder = tmp_path_factory.mktemp("released")
    out = {}
    for tree in TREES:
        root = cpu_copy(tree, folder)
        saver = root / "common" / "replay_buffer_saver.py"
        if tree == "mbdpo" and not saver.exists():
            saver.write_text(_SAVER_STANDIN)
        module = import_released(root, ["trainer.online_trainer"]).online_trainer
        config = root.parent / "cfgs" / "config.yaml" if tree == "mbdpo" else root / "config.yaml"
        out[tree] = types.SimpleNamespace(OnlineTrainer=module.OnlineTrainer, config=config, root=root)
    return out


def run_released(tree: str, oracle: types.SimpleNamespace, scenario: Scenario, tmp: Path,
                 capsys) -> tuple[Recorder, list[int] | None]:
    """The released trainer's event stream on ``scenario``, and the step column of its reward CSV (MBDPO)."""
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(oracle.config)
    cfg.pop("defaults", None)
    csv_dir = tmp / f"released-{tree}-csv"
    cfg.merge_with({"task": "stub-task", "seed": 1, "steps": scenario.steps, "seed_steps": scenario.seed_steps,
                    "eval_freq": scenario.eval_every, "eval_episodes": scenario.eval_episodes,
                    "episode_length": scenario.episode_length, "save_video": False, "episodic": False,
                    "save_reward_csv": tree == "mbdpo", "reward_csv_dir": str(csv_dir)})
    recorder = Recorder()
    env = ReleasedStubEnv(recorder, scenario.episode_length)
    trainer = oracle.OnlineTrainer(cfg=cfg, env=env, agent=ReleasedStubAgent(recorder, env),
                                   buffer=ReleasedStubBuffer(recorder), logger=ReleasedStubLogger(recorder))
    trainer.train()
    capsys.readouterr()  # its prints ("Architecture: ...", "Pretraining agent on seed data...")
    if tree != "mbdpo":
        return recorder, None
    with open(csv_dir / "stub-task_1.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return recorder, [int(row["step"]) for row in rows]


# --- our loop ---------------------------------------------------------------------------------------------------
class OursStubEnv(gym.Env):
    """A gymnasium env of fixed-length episodes (truncated, never terminated); observation (episode, t, 0)."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (OBS_DIM,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (ACTION_DIM,), np.float32)

    def __init__(self, recorder: Recorder, length: int, role: str):
        self.recorder, self.length, self.role = recorder, length, role
        self.episode, self.t = -1, 0

    def _obs(self) -> np.ndarray:
        return np.array([self.episode, self.t, 0.0], dtype=np.float32)

    def reset(self, *, seed=None, options=None):
        self.episode, self.t = self.episode + 1, 0
        return self._obs(), {}

    def step(self, action):
        self.t += 1
        if self.role == "train":
            self.recorder.transition(self.episode, self.t)
        else:
            assert self.recorder.pending == "eval", "our evaluation env stepped without an eval-mode act"
            self.recorder.pending = None
            self.recorder.note("transition", "eval", self.episode, self.t)
        return self._obs(), 1.0, False, self.t >= self.length, {}


def stub_agent_class(algo: str, recorder: Recorder, train_env: Callable[[], OursStubEnv]) -> type:
    """Our real ``Agent`` of ``algo`` with ``act`` and ``update`` replaced by recorders (all else is the real one)."""
    real = get_algorithm(algo).load().Agent

    class RecordingAgent(real):
        def act(self, obs, eval_mode: bool) -> np.ndarray:
            recorder.pending = "eval" if eval_mode else "agent"
            return np.zeros(ACTION_DIM, dtype=np.float32)

        def update(self, buffer) -> dict[str, float]:
            batch = buffer.sample(SAMPLE_BATCH, horizon=self.horizon)
            sampled = set(batch.obs[:, 0, 0].astype(int).tolist())
            env = train_env()  # its episode is in progress unless this update follows its last step
            in_progress = env.episode if env.t < env.length else None
            recorder.note("update", recorder.phase, in_progress in sampled)
            return {}

        def on_seeding_done(self, buffer, seed_steps, report=None):
            recorder.phase = "pretrain"
            try:
                return super().on_seeding_done(buffer, seed_steps, report)
            finally:
                recorder.phase = "update"

    return RecordingAgent


def run_ours(algo: str, scenario: Scenario, tmp: Path, monkeypatch, capsys,
             **agent_overrides: Any) -> tuple[Recorder, list[int], Any]:
    """Our loop's event stream on ``scenario``, the step column of its eval.csv, and the trainer
    (``agent_overrides``: agent config keys other than their defaults)."""
    recorder = Recorder()
    spec = dataclasses.replace(get_task(BASE_TASK), episode_length=scenario.episode_length,
                               action_repeat=scenario.action_repeat)
    envs: dict[str, OursStubEnv] = {}

    def make_env(task, seed=None, obs=None, shadows=None):  # the trainer makes its training env first, then eval
        role = "train" if "train" not in envs else "eval"
        envs[role] = OursStubEnv(recorder, scenario.episode_length, role)
        return envs[role]

    module = get_algorithm(algo).load()
    agent_class = stub_agent_class(algo, recorder, lambda: envs["train"])
    entry = types.SimpleNamespace(load=lambda: types.SimpleNamespace(Agent=agent_class, Config=module.Config))
    monkeypatch.setattr(trainer_module, "get_task", lambda name, obs=None: spec)
    monkeypatch.setattr(trainer_module, "make_env", make_env)
    monkeypatch.setattr(trainer_module, "get_algorithm", lambda name: entry)
    repeat = scenario.action_repeat
    cfg = RunConfig(algo=algo, task=BASE_TASK, seed=1, steps=scenario.steps * repeat,
                    eval_every=scenario.eval_every * repeat, eval_episodes=scenario.eval_episodes,
                    seed_steps=scenario.seed_steps, results_dir=str(tmp), progress=False, device="cpu",
                    agent=module.Config(model_size="1.7M", compute="reference", precision="fp32",
                                        **agent_overrides))
    run_dir = tmp / f"ours-{algo}"
    run_dir.mkdir()
    trainer = trainer_module.OnlineTrainer(cfg, run_dir)
    end_episode = trainer.buffer.end_episode

    def recording_end_episode() -> None:
        end_episode()
        recorder.note("replay", envs["train"].episode, envs["train"].t)

    trainer.buffer.end_episode = recording_end_episode
    append = trainer.eval_log.append

    def recording_append(row) -> None:
        recorder.note("eval_row", int(row["step"]))
        append(row)

    trainer.eval_log.append = recording_append
    trainer.run()
    capsys.readouterr()  # its cost line on stderr
    with open(run_dir / "eval.csv", newline="") as f:
        steps = [int(float(row["step"])) for row in csv.DictReader(f)]
    return recorder, steps, trainer


# --- one reduction for both streams -----------------------------------------------------------------------------
def measure(events: list[tuple]) -> dict[str, Any]:
    """The schedule as numbers; agent steps k count training transitions collected so far (1-based)."""
    k = updates = 0
    sources: list[str] = []
    bursts: list[list] = []  # [k, updates at that k, pretrain-phase updates among them]
    last_step_updates: dict[int, int] = {}  # episode -> updates made when its last known step was taken
    replay: list[tuple[int, int, int]] = []  # (k at entry, transitions, updates since the episode's last step)
    replay_before_first_update: list[int] = []
    open_sampled = False
    evals: list[dict[str, Any]] = []
    eval_steps: list[tuple[int, int]] = []  # (episode, t) of the evaluation in progress
    for event in events:
        kind = event[0]
        if kind == "transition":
            _, source, episode, t = event
            if source == "eval":
                eval_steps.append((episode, t))
                continue
            k += 1
            sources.append(source)
            last_step_updates[episode] = updates
        elif kind == "update":
            _, phase, sampled_open = event
            open_sampled |= sampled_open
            if not bursts or bursts[-1][0] != k:
                bursts.append([k, 0, 0])
            bursts[-1][1] += 1
            bursts[-1][2] += phase == "pretrain"
            updates += 1
        elif kind == "replay":
            _, episode, transitions = event
            replay.append((k, transitions, updates - last_step_updates[episode]))
            if updates == 0:
                replay_before_first_update.append(transitions)
        elif kind == "eval_row":
            episodes = sum(1 for _, t in eval_steps if t == 1)
            last_t: dict[int, int] = {}
            for episode, t in eval_steps:
                last_t[episode] = max(t, last_t.get(episode, 0))
            lengths = sorted(set(last_t.values()))
            evals.append({"row": event[1], "k": k, "episodes": episodes, "lengths": lengths, "updates": updates})
            eval_steps = []
    agent_steps = [i + 1 for i, s in enumerate(sources) if s == "agent"]
    first_agent = agent_steps[0] if agent_steps else None
    seeding_k, seeding_n, pretrain_n = bursts[0] if bursts else (None, 0, 0)
    return {
        "random_steps": sources.count("random"),
        "first_agent_step": first_agent,
        "random_after_agent": first_agent is not None and "random" in sources[first_agent - 1:],
        "transitions": k,
        "seeding_burst_step": seeding_k,
        "seeding_burst_updates": seeding_n,
        "pretrain_phase_updates": pretrain_n,
        "later_burst_sizes": sorted({n for _, n, _ in bursts[1:]}),
        "every_step_after_seeding_updates": [b[0] for b in bursts[1:]] == list(range(seeding_k + 1, k + 1))
        if bursts else False,
        "total_updates": updates,
        "replayed_at_pretraining": replay_before_first_update,
        "replay_steps": [r[0] for r in replay],
        "replay_lengths": sorted({r[1] for r in replay}),
        "replay_lag": [r[2] for r in replay],
        "open_episode_sampled": open_sampled,
        "eval_agent_steps": [e["k"] for e in evals],
        "eval_rows": [e["row"] for e in evals],
        "eval_episodes": sorted({e["episodes"] for e in evals}),
        "eval_lengths": sorted({x for e in evals for x in e["lengths"]}),
        "updates_before_eval": [e["updates"] for e in evals],
    }


# --- the table --------------------------------------------------------------------------------------------------
@dataclass
class Row:
    quantity: str
    released: Any
    ours: Any
    relation: str  # what is asserted, and where a departure is documented
    holds: bool

    def line(self) -> str:
        return f"{'ok ' if self.holds else 'BAD'} | {self.quantity} | {self.released} | {self.ours} | {self.relation}"


def released_default_seed_steps(root: Path, episode_length: int) -> int:
    """The released default: the ``cfg.seed_steps = ...`` statement of ``MBDPO/envs/__init__.py``'s ``make_env``,
    evaluated with ``cfg.episode_length`` = its env's ``max_episode_steps`` (agent steps: the released Timeout
    wrapper counts agent steps). ``make_env`` itself cannot run under gymnasium 1.x
    (tests/differential/test_envs.py)."""
    tree = ast.parse((root / "envs" / "__init__.py").read_text())
    for node in ast.walk(tree):
        if (isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Attribute)
                and node.targets[0].attr == "seed_steps"):
            expression = compile(ast.Expression(node.value), "released envs/__init__.py", "eval")
            return eval(expression, {"max": max}, {"cfg": types.SimpleNamespace(episode_length=episode_length)})
    raise AssertionError("the released make_env no longer sets cfg.seed_steps: update this test")


def schedule_rows(s: Scenario, rel: dict[str, Any], ours: dict[str, Any], released_csv: list[int] | None,
                  ours_csv: list[int], ours_open_replay: bool) -> list[Row]:
    S, T, r = s.seed_steps, s.steps, s.action_repeat
    rows = [
        Row(f"random-action agent steps (seed steps S={S})", rel["random_steps"], ours["random_steps"],
            "README Departures (seeding boundary): released = ours + 1 = S + 1 (released acts at random while step <= S, ours while < S)",
            rel["random_steps"] == ours["random_steps"] + 1 == S + 1),
        Row("first agent step acted by the agent (1-based)", rel["first_agent_step"], ours["first_agent_step"],
            "README Departures (seeding boundary): released = ours + 1 = S + 2",
            rel["first_agent_step"] == ours["first_agent_step"] + 1 == S + 2),
        Row("random actions after the agent started", rel["random_after_agent"], ours["random_after_agent"],
            "equal (none)", rel["random_after_agent"] is ours["random_after_agent"] is False),
        Row("agent step of the pretraining updates (transitions collected)", rel["seeding_burst_step"],
            ours["seeding_burst_step"],
            "README Departures (seeding boundary): released = ours + 1 = S + 1 (released pretrains after its (S+1)-th step)",
            rel["seeding_burst_step"] == ours["seeding_burst_step"] + 1 == S + 1),
        Row("pretraining updates (released: the burst at step == seed_steps; ours: Agent.on_seeding_done's)",
            rel["seeding_burst_updates"], ours["pretrain_phase_updates"], "equal = S",
            rel["seeding_burst_updates"] == ours["pretrain_phase_updates"] == S),
        Row("replayed episodes' lengths when pretraining starts", rel["replayed_at_pretraining"],
            ours["replayed_at_pretraining"],
            "equal: every seed episode completed by then (README 'Departures': 'the pre-training after seeding "
            "then sees all seed episodes, as released')",
            rel["replayed_at_pretraining"] == ours["replayed_at_pretraining"]
            == [s.episode_length] * (S // s.episode_length)),
        Row("updates made at the seeding-end step", rel["seeding_burst_updates"], ours["seeding_burst_updates"],
            "README Departures (seeding boundary): ours = released + 1 (ours adds that step's regular update after the S pretraining ones; "
            "released's S replace it)", ours["seeding_burst_updates"] == rel["seeding_burst_updates"] + 1 == S + 1),
        Row("updates per agent step after the seeding-end step", rel["later_burst_sizes"], ours["later_burst_sizes"],
            f"equal = 1 (= 1/{r} per env step)", rel["later_burst_sizes"] == ours["later_burst_sizes"] == [1]),
        Row("every agent step after the seeding-end step updates", rel["every_step_after_seeding_updates"],
            ours["every_step_after_seeding_updates"], "equal (true)",
            rel["every_step_after_seeding_updates"] is ours["every_step_after_seeding_updates"] is True),
        Row(f"training agent steps of a run of steps={T} agent steps (ours: steps={T * r} env steps)",
            rel["transitions"], ours["transitions"],
            "README Departures (seeding boundary): released = ours + 1 (released loops while step <= steps; the extra step starts an "
            "episode that never enters the replay)", rel["transitions"] == ours["transitions"] + 1 == T + 1),
        Row("total updates of the run", rel["total_updates"], ours["total_updates"],
            "README Departures (seeding boundary): ours = released + 1 = steps + 1 (the seeding-end row; the extra released step has one)",
            ours["total_updates"] == rel["total_updates"] + 1 == T + 1),
        Row("agent steps at which an episode enters the replay", rel["replay_steps"], ours["replay_steps"],
            "equal (the episode's last step; released: at the start of the next loop step)",
            rel["replay_steps"] == ours["replay_steps"]
            == list(range(s.episode_length, T + 1, s.episode_length))),
        Row("transitions per replayed episode", rel["replay_lengths"], ours["replay_lengths"], "equal = episode length",
            rel["replay_lengths"] == ours["replay_lengths"] == [s.episode_length]),
        Row("updates between an episode's last step and its entry into the replay", rel["replay_lag"],
            ours["replay_lag"],
            "documented (README 'Departures': 'An episode enters the replay at its last step; the released code "
            "adds it one step later'): ours 0; released 1 for episodes ending after the seeding-end step, else 0",
            ours["replay_lag"] == [0] * len(ours["replay_lag"])
            and rel["replay_lag"] == [int(k > S) for k in rel["replay_steps"]]),
        Row("an update samples the episode in progress", rel["open_episode_sampled"], ours["open_episode_sampled"],
            f"equal (false): FIDELITY.md D8 as released; ours replay_open_episode={ours_open_replay} (default)",
            rel["open_episode_sampled"] is ours["open_episode_sampled"] is False and ours_open_replay is False),
    ]
    final_extra = [T] if T not in rel["eval_agent_steps"] else []
    rows += [
        Row("agent steps at which an evaluation runs", rel["eval_agent_steps"], ours["eval_agent_steps"],
            "equal on the grid (first episode boundary at or after each multiple of eval_every); ours adds one at "
            "the end when the last step is off that grid (results/README.md eval.csv: 'Evaluations at step 0, every "
            "eval_every, and at the end'; released: none there)"
            + (f" — here: ours = released + {final_extra}" if final_extra else ""),
            ours["eval_agent_steps"] == rel["eval_agent_steps"] + final_extra),
        Row("episodes per evaluation", rel["eval_episodes"], ours["eval_episodes"], "equal = eval_episodes",
            rel["eval_episodes"] == ours["eval_episodes"] == [s.eval_episodes]),
        Row("agent steps per evaluation episode (deterministic policy: every eval act has eval_mode=True)",
            rel["eval_lengths"], ours["eval_lengths"], "equal = episode length",
            rel["eval_lengths"] == ours["eval_lengths"] == [s.episode_length]),
        Row("updates made before each evaluation", rel["updates_before_eval"], ours["updates_before_eval"],
            "README Departures (seeding boundary): at agent step k, released k-1 if k > S else 0 (it evaluates before that step's "
            "update), ours k+1 if k >= S else 0: ours = released + 2 after seeding",
            rel["updates_before_eval"] == [k - 1 if k > S else 0 for k in rel["eval_agent_steps"]]
            and ours["updates_before_eval"] == [k + 1 if k >= S else 0 for k in ours["eval_agent_steps"]]),
        Row("step written for each evaluation (logger / eval.csv)", rel["eval_rows"], ours["eval_rows"],
            f"documented (FIDELITY.md D1; results/README.md): released agent steps, ours env steps = agent steps x "
            f"action repeat ({r})",
            rel["eval_rows"] == rel["eval_agent_steps"]
            and ours["eval_rows"] == [k * r for k in ours["eval_agent_steps"]]),
        Row("CSV step column (released MBDPO: its reward CSV; released TD-MPC2's trainer writes none itself, its "
            "logger gets the step above / our eval.csv)", released_csv, ours_csv,
            f"documented (D1): ours = released x {r} on the common evaluations; the CSV repeats the logged steps",
            ours_csv == ours["eval_rows"] and (released_csv is None or (
                released_csv == rel["eval_rows"]
                and ours_csv[:len(released_csv)] == [k * r for k in released_csv]))),
    ]
    return rows


def default_rows(root: Path) -> list[Row]:
    """Default seed steps per registered episode length: the released formula against our TaskSpec.seed_steps."""
    rows = []
    for length in sorted({spec.episode_length for spec in TASKS.values()}):
        spec = next(spec for spec in TASKS.values() if spec.episode_length == length)
        released_value = released_default_seed_steps(root, length)
        rows.append(Row(f"default seed steps, episodes of {length} agent steps ({spec.name}, …)", released_value,
                        spec.seed_steps, "equal, agent steps (max(1000, 5 L))", released_value == spec.seed_steps))
    return rows


def table_text(title: str, rows: list[Row]) -> str:
    return "\n".join([title, "    | quantity | released | ours | relation", *(row.line() for row in rows)])


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
@pytest.mark.parametrize("tree", TREES)
def test_schedule_table(tree, scenario, released, tmp_path, monkeypatch, capsys):
    """One table per (released trainer, scenario): every row's relation holds."""
    rel_recorder, released_csv = run_released(tree, released[tree], scenario, tmp_path, capsys)
    ours_recorder, ours_csv, trainer = run_ours(tree, scenario, tmp_path, monkeypatch, capsys)
    rel, ours = measure(rel_recorder.events), measure(ours_recorder.events)
    rows = schedule_rows(scenario, rel, ours, released_csv, ours_csv, trainer.agent.replay_open_episode)
    if tree == "mbdpo":
        rows = default_rows(released[tree].root) + rows
    text = table_text(f"released {tree} trainer vs ours, scenario {scenario}", rows)
    print(text)
    assert all(row.holds for row in rows), "schedule rows that do not hold (BAD):\n" + text
    # the released loop under this scenario, in closed form: guards the stubs (a stub that changed the schedule)
    assert rel["transitions"] == scenario.steps + 1 and rel["total_updates"] == scenario.steps


def test_released_trainers_share_the_schedule(released, tmp_path, monkeypatch, capsys):
    """The two released trainers (MBDPO's adds reward CSVs, replay saving and checkpoints) schedule alike."""
    for scenario in SCENARIOS:
        streams = [[e for e in run_released(tree, released[tree], scenario, tmp_path / tree / scenario.name,
                                            capsys)[0].events] for tree in TREES]
        assert measure(streams[0]) == measure(streams[1]), scenario
        assert streams[0] == streams[1], scenario


def test_measure_sees_a_changed_schedule():
    """The reduction is not blind: one update moved, one random step added, one episode entered late all show."""
    base = [("transition", "random", 0, 1), ("transition", "random", 0, 2), ("replay", 0, 2),
            ("update", "update", False), ("update", "update", False), ("transition", "agent", 1, 1),
            ("update", "update", False), ("eval_row", 3)]
    m = measure(base)
    assert (m["random_steps"], m["seeding_burst_step"], m["seeding_burst_updates"], m["later_burst_sizes"],
            m["replay_steps"], m["replay_lag"], m["eval_agent_steps"]) == (2, 2, 2, [1], [2], [0], [3])
    moved = base[:3] + base[5:6] + base[3:5] + base[6:]
    assert measure(moved)["seeding_burst_step"] == 3
    late = base[:2] + base[3:4] + base[2:3] + base[4:]
    assert measure(late)["replay_lag"] == [1]
    assert measure([("transition", "random", 0, 1)] + base)["random_steps"] == 3


def test_open_episode_row_can_fail(tmp_path, monkeypatch, capsys):
    """With ``replay_open_episode=true`` (our non-default option) the measurement sees updates sample the episode in
    progress, so the D8 row above would fail if our default changed."""
    recorder, _, trainer = run_ours("tdmpc2", SCENARIOS[0], tmp_path, monkeypatch, capsys, replay_open_episode=True)
    assert trainer.agent.replay_open_episode is True
    assert measure(recorder.events)["open_episode_sampled"] is True
