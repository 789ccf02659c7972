"""The offline path as another lab meets it: relative paths from any working directory, a full disk while a
dataset is written, a crashed writer's temporary folder, Minari's ``recover_environment()``, ``dataset info
--verify`` checking what training checks, and a failed start that leaves no run folder behind."""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from algorithms.cli import main
from offline.dataset import DatasetError, read_dataset, read_manifest
from offline.random_data import random_episodes
from offline.writer import OWNER_FILE, DatasetWriter, write_dataset

TASKS = {"cartpole-balance": (5, 1), "reacher-easy": (6, 2)}


@pytest.fixture(scope="module")
def episodes() -> dict[str, list]:
    return {task: random_episodes(task, 1, seed=i + 1) for i, task in enumerate(TASKS)}


@pytest.fixture(scope="module")
def dataset(episodes, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("interop") / "two-tasks"
    write_dataset(path, list(TASKS), [d[0] for d in TASKS.values()], [d[1] for d in TASKS.values()], episodes)
    return path


def temp_folders(folder: Path) -> list[Path]:
    return sorted(folder.glob(".*.tmp-*"))


def test_a_relative_path_is_taken_from_the_working_directory(episodes, tmp_path, monkeypatch):
    """Minari joined a relative MINARI_DATASETS_PATH onto itself (``data/.x/minari/.../data/.x``): every writer
    resolves the path where the command reads it."""
    monkeypatch.chdir(tmp_path)
    write_dataset("data/two-tasks", list(TASKS), [5, 6], [1, 2], episodes)
    manifest, read = read_dataset(tmp_path / "data" / "two-tasks")
    assert manifest["episodes"] == [1, 1] and len(read["reacher-easy"][0]) == 500
    assert not temp_folders(tmp_path / "data")


def test_import_tdmpc2_with_a_relative_out(episodes, tmp_path, monkeypatch, capsys):
    import torch

    from offline.tasksets import MT30

    src = tmp_path / "src"
    src.mkdir()
    order = [(task, e) for task, eps in episodes.items() for e in eps]
    steps = len(order[0][1]) + 1
    obs, action = torch.zeros(len(order), steps, 6), torch.zeros(len(order), steps, 2)
    reward, task = torch.zeros(len(order), steps), torch.zeros(len(order), steps, dtype=torch.int64)
    for i, (name, e) in enumerate(order):
        obs[i, :, :e.obs.shape[1]] = torch.from_numpy(e.obs)
        action[i, 0], reward[i, 0] = float("nan"), float("nan")
        action[i, 1:, :e.action.shape[1]] = torch.from_numpy(e.action)
        reward[i, 1:] = torch.from_numpy(e.reward)
        task[i] = MT30.index(name)
    torch.save({"obs": obs, "action": action, "reward": reward, "task": task}, src / "chunk_0.pt")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["dataset", "import-tdmpc2", "../src", "--out", "data/mt30-part", "--task-set", "mt30"]) == 0, \
        capsys.readouterr().err
    manifest = read_manifest(elsewhere / "data" / "mt30-part")
    assert sum(manifest["episodes"]) == 2


def test_a_full_disk_is_one_message_and_leaves_no_temporary_folder(episodes, tmp_path, monkeypatch):
    """Before h5py writes (a write the disk cannot hold crashed the interpreter): the free space is checked."""
    import offline.writer as writer_module

    real = shutil.disk_usage
    monkeypatch.setattr(writer_module.shutil, "disk_usage",
                        lambda path: real(path)._replace(free=4096))
    with pytest.raises(DatasetError, match=r"not enough space to write task cartpole-balance.*MiB free"):
        write_dataset(tmp_path / "ds", list(TASKS), [5, 6], [1, 2], episodes)
    assert not temp_folders(tmp_path) and not (tmp_path / "ds").exists()


def test_a_storage_error_while_writing_is_one_message(episodes, tmp_path, monkeypatch):
    """The error h5py raises when the disk fills during a write: caught, the temporary folder removed."""
    import minari

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(minari, "create_dataset_from_buffers", full)
    with pytest.raises(DatasetError, match=r"cannot write .*main_data.hdf5: No space left on device \(.* free "
                                           r"there\); nothing was kept"):
        write_dataset(tmp_path / "ds", list(TASKS), [5, 6], [1, 2], episodes)
    assert not temp_folders(tmp_path) and not (tmp_path / "ds").exists()


def test_an_hdf5_crash_while_writing_is_one_message(episodes, tmp_path, monkeypatch):
    """On a full disk h5py raised inside its deallocators and then crashed the interpreter (a segmentation fault,
    measured on a 300 KiB tmpfs): the write runs in a child process, so this one reports it and cleans up."""
    import faulthandler
    import signal

    import minari

    def crash(*args, **kwargs):
        faulthandler.disable()  # the crash is wanted: no "Fatal Python error" dump in the test log
        os.kill(os.getpid(), signal.SIGSEGV)

    monkeypatch.setattr(minari, "create_dataset_from_buffers", crash)
    with pytest.raises(DatasetError, match=r"writing .*main_data.hdf5 crashed the HDF5 library \(signal 11; .* "
                                           r"free there"):
        write_dataset(tmp_path / "ds", list(TASKS), [5, 6], [1, 2], episodes)
    assert not temp_folders(tmp_path) and not (tmp_path / "ds").exists()


def test_a_crashed_writers_temporary_folder_is_removed_or_named(episodes, tmp_path, capsys):
    stale = tmp_path / ".ds.tmp-crashed"
    (stale / "minari").mkdir(parents=True)
    (stale / OWNER_FILE).write_text(f"{2**22 + 12345} {os.uname().nodename}\n")  # no such process
    write_dataset(tmp_path / "ds", list(TASKS), [5, 6], [1, 2], episodes)
    assert not stale.exists() and "removed" in capsys.readouterr().err
    live = tmp_path / ".ds2.tmp-running"
    live.mkdir()
    (live / OWNER_FILE).write_text(f"{os.getpid()} {os.uname().nodename}\n")
    with pytest.raises(DatasetError, match=f"{live} is being written by {os.getpid()}"):
        DatasetWriter(tmp_path / "ds2", ["cartpole-balance"], [5], [1])
    assert live.exists()


def test_minari_recovers_the_environment(dataset, monkeypatch):
    import minari

    manifest = read_manifest(dataset)
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(dataset / "minari"))
    for task_id, task in enumerate(manifest["tasks"]):
        data = minari.load_dataset(manifest["minari_ids"][task_id])
        env = data.recover_environment()
        obs, _ = env.reset(seed=0)
        assert obs.shape == (manifest["obs_dims"][task_id],)
        assert env.action_space.shape == (manifest["action_dims"][task_id],)
        episode = next(data.iterate_episodes())
        assert env.observation_space.shape == episode.observations.shape[1:]
        env.close()


def test_info_says_it_checked_nothing_and_verify_checks_what_training_checks(dataset, tmp_path, capsys):
    from offline import open_dataset

    assert main(["dataset", "info", str(dataset)]) == 0
    assert "nothing was checked" in capsys.readouterr().out
    copy = tmp_path / "copy"
    shutil.copytree(dataset, copy)
    open_dataset(copy)  # builds copy/.cache as training does
    assert main(["dataset", "info", str(copy), "--verify"]) == 0
    out = capsys.readouterr().out
    assert "verified cache:" in out and "verified files:" in out and "verified tasks:" in out

    obs = copy / ".cache" / "obs.npy"
    data = bytearray(obs.read_bytes())
    data[-1] ^= 0xFF  # same size, another value: only a SHA-256 sees it
    obs.write_bytes(bytes(data))
    assert main(["dataset", "info", str(copy), "--verify"]) == 2
    err = capsys.readouterr().err
    assert str(obs) in err and "corrupt" in err and err.count("\n") == 1

    with open(obs, "r+b") as handle:  # truncated
        handle.truncate(obs.stat().st_size // 2)
    assert main(["dataset", "info", str(copy), "--verify"]) == 2
    assert "truncated" in capsys.readouterr().err

    shutil.rmtree(copy / ".cache")
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["tasks"][1] = "reacher-hardest"
    (copy / "manifest.json").write_text(json.dumps(manifest))
    assert main(["dataset", "info", str(copy), "--verify"]) == 2
    err = capsys.readouterr().err
    assert "'reacher-hardest'" in err and "not a task of this harness" in err


def offline_args(dataset: str, results: Path) -> list[str]:
    return ["train", "--offline", dataset, "--algo", "tdmpc2", "--steps", "2", "--results-dir", str(results),
            "offline.batch_size=4", "eval_episodes=1", "log_every=1", "progress=false", "threads=1",
            "agent.model_size=1.7M", "agent.enc_dim=16", "agent.mlp_dim=16", "agent.latent_dim=8",
            "agent.task_dim=4", "agent.mpc=false", "agent.diag_every=0"]


def test_an_offline_run_resumes_from_another_working_directory(dataset, tmp_path, monkeypatch, capsys):
    """config.yaml names the dataset by its absolute path: the same run from another directory, with either
    spelling of the path, is the same run (it was refused as a config change)."""
    results = tmp_path / "results"
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    relative = os.path.relpath(dataset, work)
    assert main(offline_args(relative, results)) == 0, capsys.readouterr().err
    run_dir = next((results / "runs").rglob("config.yaml")).parent
    from algorithms.common.config import load_yaml

    written = load_yaml(run_dir / "config.yaml")
    assert written["offline"]["dataset"] == str(dataset)
    # keys an offline run never reads are left out of its config.yaml
    assert "task" not in written and "batch_size" not in written["agent"]
    elsewhere = tmp_path / "elsewhere" / "deeper"
    elsewhere.mkdir(parents=True)
    monkeypatch.chdir(elsewhere)
    capsys.readouterr()
    for spelling in (str(dataset), os.path.relpath(dataset, elsewhere)):
        assert main(offline_args(spelling, results)) == 0
        assert "already finished" in capsys.readouterr().err


def test_a_failed_start_leaves_no_run_folder(dataset, tmp_path, capsys):
    copy = tmp_path / "damaged"
    shutil.copytree(dataset, copy)
    data = next((copy / "minari").rglob("main_data.hdf5"))
    with open(data, "r+b") as handle:
        handle.truncate(data.stat().st_size // 2)
    results = tmp_path / "results"
    assert main(offline_args(str(copy), results)) == 2
    assert str(data) in capsys.readouterr().err
    leftovers = [p for p in (results / "runs").rglob("*") if p.is_file()] if (results / "runs").exists() else []
    assert leftovers == []


def test_an_older_offline_config_compares_equal(dataset, tmp_path, monkeypatch):
    """config.yaml of an offline run from before: a relative dataset path, ``task`` and ``agent.batch_size``.
    The same run asked for today is the same run (no refused resume)."""
    from algorithms.common.config import to_dict
    from algorithms.common.configure import build_config, semantic_differences

    monkeypatch.chdir(dataset.parent)
    cfg = build_config("tdmpc2", overrides={"offline.dataset": dataset.name, "steps": "2"})
    today = to_dict(cfg)
    older = json.loads(json.dumps(today))
    older["offline"]["dataset"] = dataset.name
    older["task"] = "cartpole-balance"
    older["agent"]["batch_size"] = 256
    assert semantic_differences(older, today) == []
    older["agent"]["lr"] = 1.0
    assert semantic_differences(older, today) == [f"agent.lr: 1.0 -> {today['agent']['lr']!r}"]
