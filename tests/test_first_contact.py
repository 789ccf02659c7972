"""First contact (issue 18): a run names its phases with rate and ETA from the first step, says what it costs on a
CPU, warns when it will never update; `train --help` names the GPU-scale defaults; the README's by-hand command
works after the main job's runs."""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from algorithms.cli import main
from algorithms.common import progress as progress_module
from algorithms.common.progress import CostMeter, Progress, format_duration

ROOT = Path(__file__).resolve().parents[1]
PHASE_LINE = re.compile(r"^\[(?P<label>[^\]]+)\] (?P<phase>\w+)")

# SAC small enough for CI: cartpole episodes are 1,000 env steps; seeding ends mid-episode (250 agent steps)
TINY_SAC = ["--algo", "sac", "--task", "cartpole-balance", "--seed", "3", "--steps", "3000", "seed_steps=250",
            "eval_every=1000", "eval_episodes=1", "hidden_dim=32", "batch_size=32", "log_every=500", "threads=1"]


def env_with_root(**extra: str) -> dict[str, str]:
    """The subprocess imports this worktree's packages (the shared venv's editable install points elsewhere)."""
    return {**os.environ, "PYTHONPATH": str(ROOT), **extra}


def phases(text: str, label: str) -> list[str]:
    """The phase names of ``label``'s progress lines, consecutive repeats (interval lines) collapsed."""
    out: list[str] = []
    for line in text.splitlines():
        m = PHASE_LINE.match(line)
        if m and m["label"] == label and (not out or out[-1] != m["phase"]):
            out.append(m["phase"])
    return out


# --- the progress of real runs -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sac_run(tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    """A short SAC run whose stderr is a pipe (not a terminal): the plain-line progress the workflow logs get."""
    results = tmp_path_factory.mktemp("sac")
    done = subprocess.run([sys.executable, "-m", "algorithms.cli", "train", *TINY_SAC, "--results-dir", str(results)],
                          cwd=ROOT, env=env_with_root(MBDPO_PROGRESS_INTERVAL="0.2"), capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done, results / "runs" / "sac" / "cartpole-balance" / "3"


def test_non_tty_progress_goes_through_the_named_phases_in_order(sac_run):
    done, _ = sac_run
    # step-0 evaluation, random seed actions, then training with an evaluation every 1,000 env steps
    assert phases(done.stderr, "sac cartpole-balance s3") == [
        "evaluating", "seeding", "training", "evaluating", "training", "evaluating", "training", "evaluating",
        "finished"]
    lines = done.stderr.splitlines()
    assert "\r" not in done.stderr  # plain lines, no tqdm bar redrawn in place
    # the step-0 evaluation counts its episodes instead of standing at 0 %
    assert any(re.search(r"evaluating \(evaluation at env step 0\): episode 0/1", line) for line in lines)
    assert any(line.startswith("[sac cartpole-balance s3] seeding (random actions): step 0/3,000") for line in lines)
    # interval lines carry a rate and an ETA in readable units (never tqdm's 1526:07:04)
    rated = [line for line in lines if re.search(r"training: step [\d,]+/3,000 \(\d+%\), [\d,.]+ step/s, ETA \d", line)]
    assert rated, done.stderr[-2000:]
    assert all(not re.search(r"\d+:\d\d:\d\d", line) for line in rated)


def test_cost_estimate_is_printed_after_the_first_steps_of_training(sac_run):
    done, run_dir = sac_run
    lines = done.stderr.splitlines()
    cost = [i for i, line in enumerate(lines) if line.startswith("cost on cpu: ")]
    assert len(cost) == 1, done.stderr[-2000:]
    first_training = next(i for i, line in enumerate(lines) if "] training: " in line)
    second_eval = [i for i, line in enumerate(lines) if "evaluation at env step 1,000" in line][0]
    assert first_training < cost[0] < second_eval  # after seeding, within the first steps of training
    line = lines[cost[0]]
    assert re.search(r"[\d.]+ ms per act, [\d.]+ ms per update \(median of the first 5 acts and 5 updates\); "
                     r"estimate for the whole run: ", line), line
    assert "lighter" not in line  # a run of seconds is not told to be lighter
    info = json.loads((run_dir / "run.json").read_text())
    estimate = info["cost_estimate"]
    assert estimate["timed_acts"] == 5 and estimate["timed_updates"] == 5 and estimate["large"] is False
    assert estimate["act_ms"] > 0 and estimate["update_ms"] > 0
    # 3,000 env steps in 1,000-step episodes; seeding to 500, the estimate made at ~510: ~1,245 agent steps to go
    assert 1200 <= estimate["remaining_acts"] <= 1250 and estimate["remaining_evaluations"] == 3
    # the whole run's estimate is in the range of what it took (timings are noisy on shared cores: a factor 5)
    assert info["wall_time_s"] / 5 < estimate["estimate_s"] < info["wall_time_s"] * 5


def test_tdmpc2_progress_shows_its_pretraining(tmp_path):
    """TD-MPC2 with tiny settings: seeding, then N pretraining updates counted k/N, then training."""
    tiny = ["agent.model_size=1.7M", "agent.enc_dim=32", "agent.mlp_dim=32", "agent.latent_dim=16",
            "agent.num_samples=16", "agent.num_elites=4", "agent.num_pi_trajs=2", "agent.iterations=1",
            "agent.batch_size=16", "agent.diag_every=0", "agent.mpc=false", "agent.pretrain_updates=5",
            "agent.replay_open_episode=true"]  # updates may start mid-episode: pretraining right after seeding
    args = ["--algo", "tdmpc2", "--task", "cartpole-balance", "--seed", "1", "--steps", "1000", "seed_steps=100",
            "eval_every=1000", "eval_episodes=1", "threads=1", "--results-dir", str(tmp_path), *tiny]
    done = subprocess.run([sys.executable, "-m", "algorithms.cli", "train", *args], cwd=ROOT,
                          env=env_with_root(MBDPO_PROGRESS_INTERVAL="1000"), capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert phases(done.stderr, "tdmpc2 cartpole-balance s1") == [
        "evaluating", "seeding", "pretraining", "training", "evaluating", "finished"]
    assert re.search(r"pretraining \(updates on the seed data\): update 0/5, starting \(at step 200/1,000",
                     done.stderr), done.stderr[-2000:]


def test_pretraining_reports_each_update():
    from tests.test_tdmpc2 import filled

    agent, buffer, _ = filled(diag_every=0)
    calls: list[tuple[int, int]] = []
    agent.on_seeding_done(buffer, seed_steps=3, report=lambda done, total: calls.append((done, total)))
    assert calls == [(0, 3), (1, 3), (2, 3), (3, 3)] and agent.num_updates == 3


def test_offline_progress_names_updating_and_each_task_of_an_evaluation(tmp_path, monkeypatch, capsys):
    from offline.writer import write_dataset
    from tests.test_offline_train import random_episodes
    from envs import make_env

    tasks = ["cartpole-balance", "reacher-easy"]
    envs = [make_env(task, seed=0) for task in tasks]
    path = tmp_path / "two-tasks"
    write_dataset(path, tasks, [e.observation_space.shape[0] for e in envs], [e.action_space.shape[0] for e in envs],
                  {task: random_episodes(task, 1, seed=i + 1) for i, task in enumerate(tasks)}, source="random")
    monkeypatch.setenv(progress_module.INTERVAL_ENV, "1000")  # phase lines only
    args = ["train", "--offline", str(path), "--algo", "tdmpc2", "--seed", "5", "--steps", "10", "--results-dir",
            str(tmp_path / "results"), "offline.batch_size=8", "eval_every=10", "eval_episodes=1", "threads=1",
            "agent.model_size=1.7M", "agent.enc_dim=32", "agent.mlp_dim=32", "agent.latent_dim=16",
            "agent.task_dim=8", "agent.diag_every=0", "agent.mpc=false"]
    assert main(args) == 0
    err = capsys.readouterr().err
    label = "tdmpc2 offline two-tasks s5"
    assert phases(err, label) == ["evaluating", "updating", "evaluating", "finished"]
    # each task of an evaluation gets its line: 2 evaluations x 2 tasks
    task_lines = re.findall(rf"\[{label}\] evaluating \(task (\d)/2 (\S+), evaluation at update (\d+)\)", err)
    assert task_lines == [("1", "cartpole-balance", "0"), ("2", "reacher-easy", "0"),
                          ("1", "cartpole-balance", "10"), ("2", "reacher-easy", "10")]


# --- the phase reporter itself -----------------------------------------------------------------------------------

class Clock:
    """A settable perf_counter: rates and ETAs without waiting."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_reporter_lines_give_rate_and_eta_of_each_phase(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(progress_module.time, "perf_counter", clock)
    out = io.StringIO()
    p = Progress(1000, 0, "step", "x", stream=out, interval_s=10.0, tty=False)
    p.phase("seeding", "random actions", end=200)
    clock.now += 10
    p.advance(100)  # 10 s after the phase line: an interval line
    p.count("pretraining", 0, 50, "update")
    clock.now += 5
    p.count("pretraining", 5, 50, "update")  # 5 s: no line yet
    clock.now += 5
    p.count("pretraining", 10, 50, "update")
    p.phase("training")
    p.phase("training")  # the same phase again: no line
    p.close()
    assert out.getvalue().splitlines() == [
        "[x] seeding (random actions): step 0/1,000 (0%), starting",
        "[x] seeding (random actions): step 100/1,000 (10%), 10.0 step/s, phase ends at step 200 in 10s",
        "[x] pretraining: update 0/50, starting (at step 100/1,000 (10%))",
        "[x] pretraining: update 10/50, 1.0 update/s, phase ETA 40s; at step 100/1,000 (10%)",
        "[x] training: step 100/1,000 (10%), starting",
        "[x] finished: step 100/1,000 in 20s",
    ]


def test_reporter_on_a_terminal_draws_bars_that_name_the_phase():
    out = io.StringIO()
    p = Progress(1000, 0, "step", "sac task s1", stream=out, tty=True)
    p.phase("seeding", "random actions", end=200)
    p.advance(100)
    p.count("evaluating", 1, 4, "episode", "evaluation at env step 100")
    p.phase("training")
    p.close()
    text = out.getvalue()
    assert "sac task s1 seeding" in text and "sac task s1 training" in text
    assert "evaluating (evaluation at env step 100)" in text and "1/4" in text  # the second bar's k/N
    assert "[sac task s1]" not in text  # bars, not the plain lines


def test_disabled_progress_writes_nothing():
    out = io.StringIO()
    with Progress(10, 0, "step", "x", enabled=False, stream=out, tty=False) as p:
        p.phase("seeding")
        p.advance(5)
        p.count("evaluating", 1, 2, "episode")
    assert out.getvalue() == ""


@pytest.mark.parametrize("seconds, text", [(45, "45s"), (200, "3m 20s"), (7500, "2h 05m"),
                                           (5_494_000, "63d 14h"), (float("nan"), "unknown")])
def test_durations_read_as_sizes(seconds, text):
    assert format_duration(seconds) == text


# --- the cost estimate -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("algo, expected", [
    ("tdmpc2", ["agent.model_size=1.7M", "agent.num_samples=128", "agent.iterations=3", "eval_episodes=2"]),
    ("mbdpo", ["agent.model_size=1.7M", "agent.num_samples=128", "agent.diffusion_steps=5", "eval_episodes=2"]),
])
def test_a_large_estimate_names_the_lighter_cpu_settings(algo, expected, tmp_path, capsys):
    """The defaults (GPU-scale) with the timing of a CPU (monkeypatched: 400 ms per act, 200 ms per update)."""
    from algorithms.common.configure import build_config
    from algorithms.common.online_loop import OnlineTrainer
    from algorithms.common.runfolder import make_run_dir

    cfg = build_config(algo, None, {"task": "cartpole-balance", "steps": "20000", "results_dir": str(tmp_path),
                                    "device": "cpu", "threads": "1"})
    trainer = OnlineTrainer(cfg, make_run_dir(cfg))
    trainer.counters.update(env_step=trainer.schedule.seed_env_steps + 10, seeding_done=True, next_eval=6000)
    trainer.cost = CostMeter(acts=[0.4] * 5, updates=[0.2] * 5)
    assert trainer.cost.ready
    trainer.report_cost()
    err = capsys.readouterr().err
    line = next(line for line in err.splitlines() if line.startswith("cost on cpu: "))
    assert "400.0 ms per act, 200.0 ms per update" in line
    # 20,000 env steps: 5,000 of seeding, then 7,495 agent steps x 0.6 s + 8 evaluations (6,000 ... 18,000 and the
    # final one) x 10 episodes x 500 acts x 0.4 s = 4,497 s + 16,000 s
    assert re.search(r"estimate for the whole run: 5h 4\dm", line), line
    assert f"config/checks/{algo}-cartpole-cpu.yaml" in line
    for setting in expected:
        assert setting in line
    assert "this run continues with the settings asked for" in line
    assert cfg.agent.model_size == "6M"  # named, not applied
    info = json.loads((trainer.run_dir / "run.json").read_text())["cost_estimate"]
    assert info["large"] is True and set(expected) <= set(info["lighter_settings"])
    assert info["remaining_acts"] == 7495 and info["remaining_evaluations"] == 8


def test_settings_already_light_are_not_suggested_again():
    from algorithms.tdmpc2 import Config

    light = Config(model_size="1.7M", num_samples=128, num_elites=16, num_pi_trajs=6, iterations=3, batch_size=128)
    hint, path = progress_module.lighter_settings("tdmpc2", light, eval_episodes=2)
    assert hint == [] and path is not None
    cost = {"act_ms": 1.0, "update_ms": 1.0, "timed_acts": 5, "timed_updates": 5, "remaining_acts": 10 ** 7,
            "remaining_updates": 10 ** 7, "remaining_evaluations": 1, "eval_agent_steps": 500, "elapsed_s": 1.0,
            "estimate_s": 3 * 3600.0}
    line = progress_module.cost_line("tdmpc2", "cpu", cost, hint, path, "--steps")
    assert "no lighter CPU preset" in line and "fewer --steps" in line


def test_no_estimate_on_a_gpu_device(tmp_path, capsys, monkeypatch):
    from algorithms.common.configure import build_config
    from algorithms.common.online_loop import OnlineTrainer
    from algorithms.common.runfolder import make_run_dir

    cfg = build_config("sac", None, {"task": "cartpole-balance", "results_dir": str(tmp_path), "device": "cpu",
                                     "hidden_dim": "32"})
    trainer = OnlineTrainer(cfg, make_run_dir(cfg))
    trainer.device = type(trainer.device)("meta")  # stands for a CUDA device: not a CPU
    trainer.cost = CostMeter(acts=[1.0] * 5, updates=[1.0] * 5)
    trainer.report_cost()
    assert "cost on" not in capsys.readouterr().err and trainer.cost.reported


# --- a run that will never update --------------------------------------------------------------------------------

def test_a_run_shorter_than_its_seed_steps_warns(tmp_path, capsys):
    # the obvious first command: --steps 3000 on cartpole, whose default seeding is 2,500 agent steps
    args = ["train", "--algo", "sac", "--task", "cartpole-balance", "--steps", "3000", "--results-dir", str(tmp_path),
            "eval_every=3000", "eval_episodes=1", "hidden_dim=32", "threads=1", "progress=false"]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert re.search(r"warning: this run never updates the agent nor acts with it: its 3,000 env steps end before "
                     r"its seed steps do \(seed_steps=2,500 agent steps x action repeat 2 = 5,000 env steps", err), err
    assert "Lower seed_steps (e.g. seed_steps=" in err and "raise --steps above 5,000" in err
    train_rows = (tmp_path / "runs" / "sac" / "cartpole-balance" / "1" / "train.csv").read_text().splitlines()
    assert all(row.split(",")[1] == "0" for row in train_rows[1:])  # the warning was right: no update


def test_a_run_that_reaches_its_updates_does_not_warn(sac_run):
    assert "never updates" not in sac_run[0].stderr


# --- train --help ------------------------------------------------------------------------------------------------

def test_train_help_names_the_gpu_scale_defaults_and_the_lighter_settings(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    assert "GPU-scale defaults" in text and "512 samples x 6 iterations" in text
    assert re.search(r"20\s+diffusion steps", text)
    assert re.search(r"0\.3 s \(TD-MPC2\) to 1 s \(MBDPO\) per act", text)
    # every setting the help names is the one a CPU check file holds (the help follows config/checks/)
    checks = {name: yaml.safe_load((ROOT / "config" / "checks" / f"{name}-cartpole-cpu.yaml").read_text())
              for name in ("tdmpc2", "mbdpo")}
    description = text[text.index("GPU-scale defaults"):text.index("positional arguments")]
    named = re.findall(r"(agent\.\w+|eval_episodes)=(\S+)", description)
    assert len(named) >= 7
    for key, value in named:
        values = [c["agent"].get(key.removeprefix("agent.")) if key.startswith("agent.") else c.get(key)
                  for c in checks.values()]
        assert any(str(v) == value for v in values), (key, value)


# --- the README's by-hand command after the main job -------------------------------------------------------------

def readme_by_hand_command() -> list[str]:
    text = (ROOT / "README.md").read_text()
    m = re.search(r"One run by hand: `([^`]+)`", text)
    assert m, "README.md lost its 'One run by hand' command"
    return shlex.split(m.group(1))


def test_readme_by_hand_command_works_after_the_main_job(tmp_path):
    sys.path.insert(0, str(ROOT / "workflow" / "scripts"))
    import plan

    command = readme_by_hand_command()
    assert command[0] == ".venv/bin/mbdpo-bench" and command[1] == "train"
    args = command[2:]
    algo, task, seed = (args[args.index(flag) + 1] for flag in ("--algo", "--task", "--seed"))
    # the main job's run of that algorithm, task and seed, with the embedded default's settings (steps cut to
    # 2,000 to keep it short: a run folder of another config is what matters), in the results root it uses
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    run = next(r for r in plan.expand(config) if (r.algo, r.task, r.seed) == (algo, task, int(seed)))
    workflow_args = ["train", "--algo", run.algo, *(f"{k}={v}" for k, v in run.overrides_dict().items()),
                     f"task={run.task}", f"seed={run.seed}", f"name={run.name}", "steps=2000",
                     f"results_dir={config['results_dir']}", "progress=false", "threads=1"]
    env = env_with_root()
    first = subprocess.run([sys.executable, "-m", "algorithms.cli", *workflow_args], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-2000:]
    assert (tmp_path / config["results_dir"] / "runs" / run.key / "run.json").exists()

    # the README's command verbatim, then overrides that keep it short (key=value wins over --steps)
    tiny = ["steps=2000", "seed_steps=250", "eval_episodes=1", "hidden_dim=32", "batch_size=32", "threads=1",
            "progress=false"]
    by_hand = subprocess.run([sys.executable, "-m", "algorithms.cli", *command[1:], *tiny], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=600)
    assert by_hand.returncode == 0, by_hand.stderr[-2000:]
    assert "another config" not in by_hand.stderr
    run_dir = Path(by_hand.stdout.strip().splitlines()[-1])
    assert json.loads((tmp_path / run_dir / "run.json").read_text())["status"] == "finished"
    assert (tmp_path / run_dir).resolve() != (tmp_path / config["results_dir"] / "runs" / run.key).resolve()

    # the check can fail: the same command without its own results folder is refused (the bug this guards)
    i = command.index("--results-dir")
    shared = subprocess.run([sys.executable, "-m", "algorithms.cli", *command[1:i], *command[i + 2:], *tiny],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert shared.returncode == 2 and "holds a run with another config" in shared.stderr
