"""Offline-to-online fine-tuning (issue 16, item 1; paper fig. 7): an online run started from a tiny multi-task
offline checkpoint loads its weights (not re-initialised), adds a task-embedding row for an unseen task (the old rows
unchanged) or uses a seen task's own row, trains and evaluates, and resumes bit for bit after SIGKILL."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from algorithms.cli import main
from algorithms.common.checkpoint import CheckpointManager
from algorithms.common.configure import build_config
from algorithms.common.online_loop import OnlineTrainer
from algorithms.common.runfolder import make_run_dir
from envs import get_task, make_env
from offline.writer import write_dataset
from tests.test_offline_train import AGENT, random_episodes

ROOT = Path(__file__).resolve().parents[1]
PRETRAIN_TASKS = ("walker-walk", "cartpole-balance")  # obs 24/5, actions 6/1: the padding is walker's
UNSEEN = "reacher-easy"  # obs 6, actions 2: fits the padding, never in the dataset
FINETUNE_AGENT = {k: v for k, v in AGENT["mbdpo"].items()
                  if k not in ("model_size", "enc_dim", "mlp_dim", "latent_dim", "task_dim", "use_score_network")}
"""Acting/learning keys only: the model's shape comes from the pretrained run."""


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("o2o") / "two-tasks"
    envs = [make_env(task, seed=0) for task in PRETRAIN_TASKS]
    write_dataset(path, list(PRETRAIN_TASKS), [e.observation_space.shape[0] for e in envs],
                  [e.action_space.shape[0] for e in envs],
                  {task: random_episodes(task, 1, seed=i + 1) for i, task in enumerate(PRETRAIN_TASKS)},
                  source="random")
    return path


def pretrain(dataset: Path, results: Path, algo: str) -> Path:
    args = ["train", "--offline", str(dataset), "--algo", algo, "--steps", "6", "--results-dir", str(results),
            "offline.batch_size=8", "eval_every=6", "eval_episodes=1", "progress=false", "threads=1",
            *[f"agent.{k}={v}" for k, v in AGENT[algo].items()]]
    assert main(args) == 0
    return results / "runs" / f"{algo}-offline" / dataset.name / "1"


@pytest.fixture(scope="module")
def pretrained(dataset, tmp_path_factory) -> dict[str, Path]:
    """A tiny MBDPO (energy + score network) and TD-MPC2 pretraining run of 6 updates each."""
    results = tmp_path_factory.mktemp("pretrain")
    return {algo: pretrain(dataset, results, algo) for algo in ("mbdpo", "tdmpc2")}


def finetune_args(checkpoint: Path, results: Path, task: str = UNSEEN, algo: str = "mbdpo",
                  steps: int = 2000) -> list[str]:
    agent = FINETUNE_AGENT if algo == "mbdpo" else {"mpc": False, "lr": 1e-3, "diag_every": 0}
    return ["--algo", algo, "--task", task, "--steps", str(steps), "--results-dir", str(results),
            f"init.checkpoint={checkpoint}", "eval_every=1000", "checkpoint_every=1000", "eval_episodes=1",
            "keep_checkpoints=3", "progress=false", "threads=1", "batch_size=8", "log_every=500",
            *[f"agent.{k}={v}" for k, v in agent.items()]]


def overrides(args: list[str]) -> dict[str, str]:
    out = dict(a.split("=", 1) for a in args if "=" in a)
    pairs = dict(zip(args[::2], args[1::2]))
    out.update({k[2:].replace("-", "_"): v for k, v in pairs.items() if k.startswith("--") and k != "--algo"})
    return out


def fresh_trainer(args: list[str], algo: str = "mbdpo") -> OnlineTrainer:
    cfg = build_config(algo, None, overrides(args))
    return OnlineTrainer(cfg, make_run_dir(cfg))


def latest_state(run: Path) -> dict:
    state, _, _ = CheckpointManager(run / "checkpoints").load_latest()
    return state["agent"]


def test_unseen_task_loads_every_weight_and_appends_one_embedding_row(pretrained, tmp_path):
    pre = latest_state(pretrained["mbdpo"])
    trainer = fresh_trainer(finetune_args(pretrained["mbdpo"], tmp_path))
    agent = trainer.agent
    assert trainer.schedule.seed_env_steps == 0  # no seed-step warm-up when fine-tuning (METHOD.md)
    assert (agent.task_id, trainer.finetune_task.new, agent.model.task_emb.weight.shape[0]) == (2, True, 3)
    own = agent.model.state_dict()
    assert not torch.equal(own["_dynamics.0.weight"], pre["model"]["_dynamics.0.weight"])  # random before loading
    trainer.start_from_pretrained()
    own = agent.model.state_dict()
    assert set(own) == set(pre["model"])
    for key, tensor in pre["model"].items():
        if key in ("task_emb.weight", "action_masks"):
            assert torch.equal(own[key][:2], tensor), key  # the pretrained rows unchanged
        else:
            assert torch.equal(own[key], tensor), key  # dynamics, reward, pi, Qs, target Qs, encoder
    assert any(k.startswith("_target_Qs.") for k in pre["model"])  # the target Qs are among the loaded
    assert torch.equal(own["task_emb.weight"][2], pre["model"]["task_emb.weight"].mean(0))
    assert own["action_masks"][2].tolist() == [1, 1, 0, 0, 0, 0]  # reacher: 2 of walker's 6 action dims
    for name in ("energy", "score_net"):
        theirs = pre[name]
        for key, tensor in getattr(agent, name).state_dict().items():
            assert torch.equal(tensor, theirs[key]), (name, key)
    assert agent.discount == pytest.approx(get_task(UNSEEN).discount)
    obs, _ = trainer.env.reset(seed=0)
    assert obs.shape == (24,) and agent.act(obs, eval_mode=True).shape == (2,)


@pytest.fixture(scope="module")
def reference_finetune(pretrained, tmp_path_factory) -> Path:
    results = tmp_path_factory.mktemp("finetune")
    assert main(["train", *finetune_args(pretrained["mbdpo"], results)]) == 0
    return results / "runs" / "mbdpo-finetune" / UNSEEN / "1"


def test_finetune_run_trains_evaluates_and_records_its_start(reference_finetune, pretrained):
    run = reference_finetune
    info = json.loads((run / "run.json").read_text())
    checkpoint = CheckpointManager(pretrained["mbdpo"] / "checkpoints").checkpoints()[0]
    import hashlib

    assert info["status"] == "finished" and info["init_new_task"] is True and info["init_task_id"] == 2
    assert info["init_checkpoint"] == str(checkpoint.resolve())
    assert info["init_checkpoint_sha256"] == hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    assert info["init_pretrained_tasks"] == list(PRETRAIN_TASKS) and info["init_buffer_episodes"] == 0
    config = (run / "config.yaml").read_text()
    assert f"checkpoint_sha256: {info['init_checkpoint_sha256']}" in config and "task_dim: 8" in config
    rows = list(csv.DictReader(open(run / "eval.csv")))
    assert [int(r["step"]) for r in rows] == [0, 1000, 2000]
    train = list(csv.DictReader(open(run / "train.csv")))
    assert int(train[-1]["updates"]) > 500  # updates from the first finished episode: no seeding phase
    state = latest_state(run)
    pre = latest_state(pretrained["mbdpo"])
    assert not torch.equal(state["model"]["_dynamics.0.weight"], pre["model"]["_dynamics.0.weight"])  # it trained


def test_seen_task_uses_its_embedding_and_seeds_the_buffer(pretrained, dataset, tmp_path):
    args = finetune_args(pretrained["tdmpc2"], tmp_path, task="cartpole-balance", algo="tdmpc2", steps=1000)
    trainer = fresh_trainer([*args, f"init.seed_buffer_from={dataset}"], algo="tdmpc2")
    assert (trainer.agent.task_id, trainer.finetune_task.new) == (1, False)
    assert trainer.agent.model.task_emb.weight.shape[0] == 2
    trainer.start_from_pretrained()
    pre = latest_state(pretrained["tdmpc2"])
    assert torch.equal(trainer.agent.model.task_emb.weight, pre["model"]["task_emb.weight"])
    assert trainer.counters["init_buffer_episodes"] == 1 and trainer.buffer.can_sample(trainer.agent.horizon)
    assert trainer.buffer.obs.shape[1] == 24 and trainer.buffer.action.shape[1] == 6
    assert float(abs(trainer.buffer.action[:500, 1:]).max()) == 0.0  # cartpole's 1 action, padded with zeros


def cli(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "algorithms.cli", "train", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_killed_finetune_run_resumes_bit_for_bit(reference_finetune, pretrained, tmp_path):
    import time

    args = finetune_args(pretrained["mbdpo"], tmp_path)
    run = tmp_path / "runs" / "mbdpo-finetune" / UNSEEN / "1"
    proc = cli(args)
    deadline = time.time() + 240
    while not list((run / "checkpoints").glob("step_0000001000.sha256")) and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode != 0 and not (run / "checkpoints" / "step_0000002000.sha256").exists()
    resumed = cli(args)
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert "resuming from" in err
    assert (run / "eval.csv").read_bytes() == (reference_finetune / "eval.csv").read_bytes()
    info = json.loads((run / "run.json").read_text())
    assert info["resumed"] is True and info["init_new_task"] is True


def test_changed_pretrained_checkpoint_is_refused_on_resume(pretrained, tmp_path, capsys):
    import shutil

    copy = tmp_path / "pre"
    shutil.copytree(pretrained["tdmpc2"] / "checkpoints", copy / "checkpoints")
    args = finetune_args(copy, tmp_path / "r", task="cartpole-balance", algo="tdmpc2", steps=1000)
    assert main(["train", *args]) == 0
    path = CheckpointManager(copy / "checkpoints").checkpoints()[0]
    state = CheckpointManager.load(path)
    state["agent"]["model"]["_dynamics.0.weight"] += 1.0
    CheckpointManager(copy / "checkpoints").save({k: v for k, v in state.items() if k != "format_version"},
                                                 int(path.stem.split("_")[1]))
    capsys.readouterr()
    assert main(["train", *args]) == 2
    err = capsys.readouterr().err
    assert "init.checkpoint_sha256" in err and "another config" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("extra,message", [
    (["init.checkpoint=/nonexistent/run"], "config key 'init.checkpoint': /nonexistent/run is neither a checkpoint"),
    (["agent.model_size=6M"], "config key 'agent.model_size' is '6M', but the pretrained checkpoint"),
    (["init.checkpoint_sha256=abc"], "config key 'init.checkpoint_sha256' is abc, but"),
    (["--algo", "tdmpc2"], "config key 'algo' is 'tdmpc2', but the pretrained checkpoint"),
    (["init.seed_buffer_from=/nonexistent/data"], "config key 'init.seed_buffer_from'"),
])
def test_bad_init_is_one_line_exit_2(pretrained, tmp_path, capsys, extra, message):
    args = ["train", "--algo", "mbdpo", "--task", UNSEEN, "--steps", "10", "--results-dir", str(tmp_path),
            f"init.checkpoint={pretrained['mbdpo']}", *extra]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    if "model_size" in message:  # both values named
        assert "trained with '1.7M'" in err
