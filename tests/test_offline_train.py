"""Multi-task offline training (issue 15): TD-MPC2 and MBDPO on a small dataset of 3 DMControl tasks of
different observation/action sizes; losses fall, every task is evaluated, kill-and-resume is bit for bit."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from algorithms.cli import main
from algorithms.common.buffer import Batch
from algorithms.tdmpc2 import Agent as TDMPC2Agent
from algorithms.tdmpc2 import Config as TDMPC2Config
from envs import get_task, make_env
from offline import open_dataset
from offline.writer import write_dataset
from offline.random_data import random_episodes

ROOT = Path(__file__).resolve().parents[1]
TASKS = ("cartpole-balance", "reacher-easy", "walker-walk")  # obs 5/6/24, actions 1/2/6
EPISODES_PER_TASK = 2  # 500 agent steps each: 3000 transitions in all

# Tiny models: what the tests check is the plumbing, not the scale.
TINY_MODEL = {"model_size": "1.7M", "enc_dim": 32, "mlp_dim": 32, "latent_dim": 16, "task_dim": 8, "lr": 1e-3,
              "diag_every": 0}
AGENT = {
    # acting by the policy prior keeps the evaluation of 3 tasks x 500 steps cheap
    "tdmpc2": {**TINY_MODEL, "mpc": False},
    # the score network acts from the first update (amortised diffusion policy, 4 reverse steps)
    "mbdpo": {**TINY_MODEL, "num_samples": 16, "num_elites": 4, "num_pi_trajs": 2, "diffusion_steps": 4,
              "score_mc_samples": 8, "use_score_network": True, "score_warmup": 0},
}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("offline") / "three-tasks"
    envs = [make_env(task, seed=0) for task in TASKS]
    obs_dims = [env.observation_space.shape[0] for env in envs]
    action_dims = [env.action_space.shape[0] for env in envs]
    assert len(set(obs_dims)) == 3 and len(set(action_dims)) == 3
    episodes = {task: random_episodes(task, EPISODES_PER_TASK, seed=i + 1) for i, task in enumerate(TASKS)}
    write_dataset(path, list(TASKS), obs_dims, action_dims, episodes, source="random")
    return path


def agent_args(algo: str) -> list[str]:
    return [f"agent.{k}={v}" for k, v in AGENT[algo].items()]


def train_args(algo: str, dataset: Path, results: Path, steps: int = 60) -> list[str]:
    return ["--offline", str(dataset), "--algo", algo, "--seed", "5", "--steps", str(steps),
            "--results-dir", str(results), "offline.batch_size=16", "eval_every=20", "checkpoint_every=20",
            "eval_episodes=1", "log_every=10", "keep_checkpoints=5", "progress=false", "threads=1",
            *agent_args(algo)]


def run_dir(results: Path, algo: str, dataset: Path) -> Path:
    return results / "runs" / f"{algo}-offline" / dataset.name / "5"


# --- the agents --------------------------------------------------------------------------------------------------

def multitask_agent(dataset: Path, algo_module, **overrides):
    cache = open_dataset(dataset, seed=0)
    cfg = algo_module.Config(**{**AGENT[algo_module.__name__.split(".")[-1]], **overrides})
    import gymnasium as gym

    specs = [get_task(t) for t in cache.tasks]
    agent = algo_module.Agent(cfg, specs[0], gym.spaces.Box(-np.inf, np.inf, (cache.obs_dim,), np.float32),
                              gym.spaces.Box(-1, 1, (cache.action_dim,), np.float32), torch.device("cpu"),
                              num_tasks=len(cache.tasks), action_dims=cache.action_dims,
                              discounts=[s.discount for s in specs])
    return agent, cache


@pytest.mark.parametrize("algo", ["tdmpc2", "mbdpo"])
def test_world_model_losses_fall_and_actions_are_masked(dataset, algo):
    """A few hundred updates of batch 32: the world-model losses' last window is below the first."""
    import importlib

    torch.manual_seed(0)
    agent, cache = multitask_agent(dataset, importlib.import_module(f"algorithms.{algo}"), batch_size=32)
    assert agent.model.multitask and agent.model.task_dim == 8
    assert agent.model.task_emb.max_norm == 1.0
    discounts = agent.discounts.tolist()
    assert discounts == pytest.approx([get_task(t).discount for t in TASKS])
    if algo == "mbdpo":  # F([z, e], a) and s([z, e], A_t, t): the task embedding beside the latent, as released
        latent, task_dim, actions = 16, 8, cache.action_dim
        assert agent.energy.net[0].in_features == latent + task_dim + actions
        assert agent.score_net.net[0].in_features == latent + task_dim + agent.horizon * actions + agent.cfg.score_t_dim
    history = []
    for _ in range(240):
        batch = cache.sample(32, agent.horizon)
        m = agent.update(batch)
        history.append([m["consistency_loss"], m["reward_loss"], m["value_loss"]])
    h = np.array(history)
    first, last = h[:40].mean(0), h[-40:].mean(0)
    assert (last < first).all(), (first, last)
    # acting: each task's observation size in, its action size out; padded dims never leave the agent
    for task_id, task in enumerate(TASKS):
        env = make_env(task, seed=0)
        agent.set_task(task_id)
        obs, _ = env.reset(seed=0)
        action = agent.act(obs, eval_mode=True)
        assert action.shape == env.action_space.shape
        assert agent.discount == pytest.approx(get_task(task).discount)


def test_batch_update_without_task_is_the_buffer_update():
    """Single task: update(Batch) is update(buffer) (the same sample) -- the online path is unchanged."""
    from algorithms.common.buffer import ReplayBuffer

    env = make_env("cartpole-balance", seed=0)
    cfg = TDMPC2Config(**{**TINY_MODEL, "batch_size": 8, "mpc": False})

    def run(as_batch: bool) -> dict[str, float]:
        torch.manual_seed(0)
        agent = TDMPC2Agent(cfg, get_task("cartpole-balance"), env.observation_space, env.action_space,
                            torch.device("cpu"))
        buffer = ReplayBuffer(200, env.observation_space.shape, np.float32, 1, seed=0)
        obs, _ = env.reset(seed=0)
        buffer.add_first(obs)
        for t in range(60):
            obs, r, term, trunc, _ = env.step(np.array([np.sin(t)], np.float32))
            buffer.add(np.array([np.sin(t)], np.float32), r, term, obs)
        buffer.end_episode()
        source = buffer.sample(8, horizon=cfg.horizon) if as_batch else buffer
        assert not as_batch or isinstance(source, Batch)
        return agent.update(source)

    assert run(True) == run(False)


# --- the trainer ---------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def reference_runs(dataset, tmp_path_factory):
    results = tmp_path_factory.mktemp("reference")
    for algo in AGENT:
        assert main(["train", *train_args(algo, dataset, results)]) == 0
    return results


@pytest.mark.parametrize("algo", ["tdmpc2", "mbdpo"])
def test_offline_run_files(reference_runs, dataset, algo):
    run = run_dir(reference_runs, algo, dataset)
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "finished" and info["step_unit"] == "update" and info["format_version"] == 3
    assert info["steps_done"] == 60 and info["tasks"] == list(TASKS)
    rows = list(csv.DictReader(open(run / "eval.csv")))
    assert list(rows[0])[:2] == ["step", "task"]
    steps = sorted({int(r["step"]) for r in rows})
    assert steps == [0, 20, 40, 60]
    for step in steps:
        assert [r["task"] for r in rows if int(r["step"]) == step] == list(TASKS)
    assert all(np.isfinite(float(r["episode_return"])) for r in rows)
    train = list(csv.DictReader(open(run / "train.csv")))
    assert [int(r["updates"]) for r in train] == [10, 20, 30, 40, 50, 60]
    assert all(float(r["consistency_loss"]) >= 0 for r in train)
    config = (run / "config.yaml").read_text()
    assert "offline:" in config and "batch_size: 16" in config
    assert sorted(p.name for p in (run / "checkpoints").glob("*.pt"))[-1] == "step_0000000060.pt"


def cli(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "algorithms.cli", "train", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(folder: Path, pattern: str, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if list(folder.glob(pattern)):
            return
        time.sleep(0.05)
    raise TimeoutError(f"no {pattern} under {folder} after {timeout} s")


@pytest.mark.parametrize("algo,sig", [("tdmpc2", signal.SIGKILL), ("mbdpo", signal.SIGTERM)])
def test_killed_offline_run_resumes_bit_for_bit(reference_runs, dataset, tmp_path, algo, sig):
    args = train_args(algo, dataset, tmp_path)
    run = run_dir(tmp_path, algo, dataset)
    proc = cli(args)
    wait_for(run / "checkpoints", "step_0000000020.sha256")
    proc.send_signal(sig)
    proc.wait(timeout=60)
    assert proc.returncode != 0
    status = json.loads((run / "run.json").read_text())["status"]
    assert status == ("interrupted" if sig == signal.SIGTERM else "running")
    resumed = cli(args)
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert "resuming from" in err and "at update" in err
    reference = run_dir(reference_runs, algo, dataset)
    assert (run / "eval.csv").read_bytes() == (reference / "eval.csv").read_bytes()
    assert train_rows_without_timing(run) == train_rows_without_timing(reference)


def train_rows_without_timing(run: Path) -> list[dict[str, str]]:
    timing = ("wall_time_s", "updates_per_s", "update_ms", "sample_ms")
    return [{k: v for k, v in row.items() if k not in timing} for row in csv.DictReader(open(run / "train.csv"))]


def test_finished_offline_run_is_not_rerun(reference_runs, dataset, capsys):
    assert main(["train", *train_args("tdmpc2", dataset, reference_runs)]) == 0
    assert "already finished" in capsys.readouterr().err


@pytest.mark.parametrize("extra,message", [
    (["--offline", "/nonexistent/dataset"], "config key 'offline.dataset': /nonexistent/dataset is not an offline "
                                            "dataset folder"),
    (["--offline", "DATASET", "offline.batch_size=0"], "'offline.batch_size' must be positive, got 0"),
    (["--offline", "DATASET", "offline.bogus=1"], "unknown config key 'offline.bogus'"),
])
def test_bad_offline_input_is_one_line_exit_2(dataset, tmp_path, capsys, extra, message):
    extra = [str(dataset) if e == "DATASET" else e for e in extra]
    assert main(["train", "--algo", "tdmpc2", "--steps", "10", "--results-dir", str(tmp_path), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_offline_needs_steps_and_a_multitask_algorithm(dataset, tmp_path, capsys):
    assert main(["train", "--algo", "tdmpc2", "--offline", str(dataset), "--results-dir", str(tmp_path)]) == 2
    assert "config key 'steps' is required for offline training" in capsys.readouterr().err
    assert main(["train", "--algo", "sac", "--steps", "5", "--offline", str(dataset),
                 "--results-dir", str(tmp_path)]) == 2
    assert "no multi-task agent" in capsys.readouterr().err


def test_offline_run_that_cannot_fit_stops_before_allocating(dataset, tmp_path, capsys):
    args = train_args("mbdpo", dataset, tmp_path, steps=20)
    assert main(["train", *args, "memory_limit=200MiB", "offline.batch_size=1024"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "offline mbdpo (agent.model_size=" in err and "needs about" in err and "memory_limit is 200.0 MiB" in err
    assert not (run_dir(tmp_path, "mbdpo", dataset) / "config.yaml").exists()  # nothing written: a new limit runs
    assert main(["train", *args, "memory_limit=bogus"]) == 2
    assert "memory_limit='bogus': give auto" in capsys.readouterr().err
    assert main(["train", *args]) == 0
    assert "memory: about" in capsys.readouterr().err
    info = json.loads((run_dir(tmp_path, "mbdpo", dataset) / "run.json").read_text())
    assert info["memory_estimate_bytes"]["total"] > info["memory_estimate_bytes"]["weights"] > 0


def test_offline_plan_prints_each_familys_memory_estimate(tmp_path):
    sys.path.insert(0, str(ROOT / "workflow" / "scripts"))
    import plan

    config = {"offline": {"algorithms": ["mbdpo"], "datasets": {"mt80": str(tmp_path / "mt80")},
                          "model_sizes": ["1.7M", "340M"], "seeds": [1], "steps": 1000}}
    runs = plan.expand_offline(config)
    lines = plan.offline_plan_lines(runs, gpu=True)
    assert len(lines) == 2 and "mbdpo-offline-340M on mt80: about 15." in lines[1] and "gpu=1" in lines[1]
    big = plan.offline_resources(runs[1], gpu=False)
    assert big["mem_mb"] >= 15 * 1024 * 1.25 // 1000 * 1000  # the whole estimate on a CPU node, with headroom
    assert plan.offline_resources(runs[0], gpu=False)["mem_mb"] < big["mem_mb"]


# --- the workflow ----------------------------------------------------------------------------------------------------

def test_offline_plan_names_bad_values():
    sys.path.insert(0, str(ROOT / "workflow" / "scripts"))
    import plan

    good = {"algorithms": ["tdmpc2"], "datasets": {"a": "data/a"}, "seeds": [1], "steps": 10}
    assert [r.key for r in plan.expand_offline({"offline": good})] == ["tdmpc2-offline/a/1"]
    for change, message in [({"algorithms": ["sac"]}, "tdmpc2, mbdpo"), ({"steps": None}, "gradient updates"),
                            ({"datasets": []}, "mapping of labels"), ({"model_sizes": ["2M"]}, "unknown preset '2M'"),
                            ({"datasets": {"a": "x/d", "b": "y/d"}}, "share the folder name 'd'")]:
        with pytest.raises(plan.PlanError, match=message):
            plan.expand_offline({"offline": {**good, **change}})


@pytest.mark.slow
def test_snakemake_trains_two_runs_from_one_dataset(dataset, tmp_path):
    """The dataset is an input of the DAG: two run families train on it; the second invocation has nothing to do."""
    import yaml

    results = tmp_path / "results"
    config = {"results_dir": str(results), "device": "cpu", "gpu": False, "threads_per_run": 1,
              "experiments": [], "sweeps": [],
              "offline": {"algorithms": ["tdmpc2"], "model_sizes": ["1.7M"], "datasets": {"three": str(dataset)},
                          "seeds": [1, 2], "steps": 4,
                          "overrides": {"all": {"eval_every": 4, "eval_episodes": 1, "offline.batch_size": 8,
                                                **{f"agent.{k}": v for k, v in AGENT["tdmpc2"].items()
                                                   if k != "model_size"}}}}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    command = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "workflow" / "Snakefile"), "-d", str(tmp_path),
               "--cores", "2", "--configfile", str(path)]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for seed in (1, 2):
        marker = json.loads((results / "runs" / "tdmpc2-offline-1.7M" / dataset.name / str(seed) /
                             "complete.json").read_text())
        assert marker["status"] == "finished" and marker["step_unit"] == "update" and marker["steps_done"] == 4
    again = subprocess.run([*command, "-n"], capture_output=True, text=True, timeout=600, check=False)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr


def test_offline_updates_benchmark_prints_one_json_line_per_figure():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "offline_updates.py"), "--sizes", "1.7M",
                           "--batch-size", "16", "--updates", "1", "--repeats", "1", "--episodes", "1", "--length",
                           "20", "--threads", "1"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    assert {(r["algorithm"], r["metric"]) for r in records} == {
        (a, m) for a in ("tdmpc2", "mbdpo") for m in ("updates_per_s", "ms_per_update", "sample_ms")}
    assert all(r["benchmark"] == "offline_updates" and r["value"] > 0 and r["batch_size"] == 16 for r in records)


def test_non_finite_loss_stops_the_offline_run_naming_the_update(dataset, tmp_path, monkeypatch, capsys):
    calls = {"n": 0}

    def update(self, batch):
        calls["n"] += 1
        return {"consistency_loss": float("nan") if calls["n"] == 3 else 1.0}

    monkeypatch.setattr(TDMPC2Agent, "update", update)
    assert main(["train", *train_args("tdmpc2", dataset, tmp_path, steps=10), "eval_every=10"]) == 2
    assert "non-finite loss 'consistency_loss' = nan at update 3" in capsys.readouterr().err
    info = json.loads((run_dir(tmp_path, "tdmpc2", dataset) / "run.json").read_text())
    assert info["status"] == "failed"


def test_scaling_plan_names_the_missing_dataset(tmp_path):
    """config/scaling.yaml plans its runs; without the datasets, the dry run names the missing input."""
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "workflow" / "Snakefile"), "-d",
                           str(tmp_path), "-n", "--cores", "1", "--configfile", str(ROOT / "config" / "scaling.yaml")],
                          capture_output=True, text=True, timeout=300, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "Missing input files for rule train_offline" in out and "data/offline/mt" in out


def test_config_file_key_and_evaluate_refusal(reference_runs, dataset, tmp_path, capsys):
    from algorithms.common.configure import build_config
    from algorithms.common.runfolder import run_dir_for

    config = tmp_path / "offline.yaml"
    config.write_text(f"algo: mbdpo\nsteps: 50\nresults_dir: {tmp_path}\noffline:\n  dataset: {dataset}\n")
    cfg = build_config(None, str(config))
    assert cfg.is_offline and cfg.offline.batch_size == 1024 and cfg.run_name == "mbdpo-offline"
    assert run_dir_for(cfg) == tmp_path / "runs" / "mbdpo-offline" / dataset.name / "1"
    online = build_config("tdmpc2", None, {"steps": "10"})
    from algorithms.common.config import to_dict

    assert "offline" not in to_dict(online)  # online config.yaml and config_hash as before
    assert main(["evaluate", str(run_dir(reference_runs, "tdmpc2", dataset))]) == 2
    assert "is an offline multi-task run" in capsys.readouterr().err
