"""Offline data (issue 15): collect a multi-task dataset from short runs, Minari round trip, the memory-mapped
cache, corrupted files, policy collection with noise, dataset info, task sets and TD-MPC2's mt30 importer."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from algorithms.cli import main
from algorithms.common.checkpoint import CheckpointManager
from algorithms.common.config import ConfigError
from offline.cache import open_dataset
from algorithms.commands.collect import CollectError, episodes_from_buffer
from offline.dataset import DatasetError, read_dataset, read_manifest
from offline.writer import write_dataset
from offline.tasksets import MT30, MT80, TaskSetError, resolve_task_set

# three DMControl tasks of different observation/action sizes: (5, 1), (6, 2), (17, 6)
TASKS = {"cartpole-balance": (5, 1), "reacher-easy": (6, 2), "cheetah-run": (17, 6)}


def _train_args(task: str, results: Path) -> list[str]:
    return ["train", "--algo", "sac", "--task", task, "--seed", "1", "--steps", "2000", "--results-dir",
            str(results), "seed_steps=500", "eval_every=2000", "eval_episodes=1", "checkpoint_every=2000",
            "hidden_dim=32", "batch_size=32", "progress=false", "log_every=1000", "threads=1"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Three short SAC runs (2 episodes = 1000 agent steps each), made once for the module."""
    results = tmp_path_factory.mktemp("offline") / "results"
    out = {}
    for task in TASKS:
        assert main(_train_args(task, results)) == 0
        out[task] = results / "runs" / "sac" / task / "1"
    return out


@pytest.fixture(scope="module")
def dataset(runs, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "ds"
    assert main(["collect", *map(str, runs.values()), "--out", str(path)]) == 0
    return path


def _buffer_episodes(run: Path):
    state, checkpoint, _ = CheckpointManager(run / "checkpoints").load_latest()
    return state, checkpoint, episodes_from_buffer(state["buffer"])


def test_collect_from_buffers_reads_back_identically(runs, dataset):
    manifest, episodes = read_dataset(dataset)
    assert manifest["tasks"] == list(TASKS)
    assert [(o, a) for o, a in zip(manifest["obs_dims"], manifest["action_dims"])] == list(TASKS.values())
    assert manifest["transitions"] == [1000, 1000, 1000]
    for task, run in runs.items():
        state, checkpoint, expected = _buffer_episodes(run)
        got = episodes[task]
        assert len(got) == len(expected) == 2
        for a, b in zip(got, expected):
            for name in ("obs", "action", "reward", "terminated", "truncated"):
                np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
            assert a.truncated[-1] and not a.terminated.any()
        # the returns of the episodes the run logged while training
        logged = [float(line.split(",")[2]) for line in (run / "episodes.csv").read_text().splitlines()[1:]]
        np.testing.assert_allclose([e.episode_return for e in got], logged, rtol=1e-5)
        record = manifest["runs"][list(TASKS).index(task)]
        assert record["run_dir"] == str(run) and record["task"] == task and record["algo"] == "sac"
        assert record["checkpoint"] == str(checkpoint) and record["env_step"] == 2000
        assert record["source"] == "buffer" and record["episodes"] == 2 and record["config"]["task"] == task


def test_buffer_cut_leaves_out_open_and_overwritten_episodes():
    from algorithms.common.buffer import ReplayBuffer

    buffer = ReplayBuffer(12, (2,), np.float32, 1, seed=0)
    for episode, steps in enumerate((3, 4, 2)):
        buffer.add_first(np.full(2, episode * 10, np.float32))
        for t in range(steps):
            buffer.add(np.full(1, t, np.float32), float(t), False, np.full(2, episode * 10 + t + 1, np.float32))
        buffer.end_episode()
    buffer.add_first(np.zeros(2, np.float32))  # wraps: episode 0 loses its first slots; episode 3 is open
    buffer.add(np.zeros(1, np.float32), 0.0, False, np.ones(2, np.float32))
    episodes = episodes_from_buffer(buffer.state_dict())
    assert [len(e) for e in episodes] == [4, 2]
    np.testing.assert_array_equal(episodes[0].obs[:, 0], [10, 11, 12, 13, 14])


def test_minari_reads_each_task(dataset, monkeypatch):
    import minari

    _, episodes = read_dataset(dataset)
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(dataset / "minari"))
    for task, (obs_dim, action_dim) in TASKS.items():
        data = minari.load_dataset(f"{task}-v0")
        assert data.observation_space.shape == (obs_dim,) and data.action_space.shape == (action_dim,)
        items = list(data.iterate_episodes())
        assert len(items) == len(episodes[task])
        for item, episode in zip(items, episodes[task]):
            np.testing.assert_array_equal(item.observations, episode.obs)
            np.testing.assert_array_equal(item.actions, episode.action)
            np.testing.assert_array_equal(item.rewards, episode.reward)


def test_cache_samples_padded_subtrajectories(dataset, tmp_path):
    _, episodes = read_dataset(dataset)
    cache = open_dataset(dataset, seed=5, cache_dir=tmp_path)
    assert (cache.obs_dim, cache.action_dim) == (17, 6) and cache.num_transitions == 3000
    batch = cache.sample(256, horizon=3)
    assert batch.obs.shape == (256, 4, 17) and batch.action.shape == (256, 3, 6) and batch.reward.shape == (256, 3)
    assert set(batch.task.tolist()) == {0, 1, 2}
    for i in range(0, 256, 17):
        task = list(TASKS)[batch.task[i]]
        obs_dim, action_dim = TASKS[task]
        assert not batch.obs[i, :, obs_dim:].any() and not batch.action[i, :, action_dim:].any()
        # the sub-trajectory is a stretch of one of the task's episodes
        matches = [(e, t) for e in episodes[task] for t in np.flatnonzero((e.obs == batch.obs[i, 0, :obs_dim]).all(1))]
        assert matches
        episode, t = matches[0]
        np.testing.assert_array_equal(batch.obs[i, :, :obs_dim], episode.obs[t:t + 4])
        np.testing.assert_array_equal(batch.action[i, :, :action_dim], episode.action[t:t + 3])
        np.testing.assert_array_equal(batch.reward[i], episode.reward[t:t + 3])
    again = open_dataset(dataset, seed=5, cache_dir=tmp_path).sample(256, horizon=3)
    np.testing.assert_array_equal(again.obs, batch.obs)


def _corrupt_copy(dataset: Path, tmp_path: Path) -> tuple[Path, Path]:
    copy = tmp_path / "copy"
    shutil.copytree(dataset, copy, ignore=shutil.ignore_patterns(".cache"))
    return copy, copy / "minari" / "reacher-easy-v0" / "data" / "main_data.hdf5"


@pytest.mark.parametrize("damage", ["flip", "truncate", "manifest"])
def test_corrupt_dataset_names_the_file(dataset, tmp_path, capsys, damage):
    copy, data = _corrupt_copy(dataset, tmp_path)
    if damage == "flip":
        raw = bytearray(data.read_bytes())
        for k in range(len(raw) // 2, len(raw) // 2 + 64):
            raw[k] ^= 0xFF
        data.write_bytes(bytes(raw))
        named = data
    elif damage == "truncate":
        data.write_bytes(data.read_bytes()[: data.stat().st_size // 3])
        named = data
    else:
        (copy / "manifest.json").unlink()
        named = copy / "manifest.json"
    with pytest.raises(DatasetError, match=str(named)):
        read_dataset(copy)
    with pytest.raises(DatasetError, match=str(named)):
        open_dataset(copy, cache_dir=tmp_path / "cache")
    capsys.readouterr()
    assert main(["dataset", "info", str(copy), "--verify"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(named) in err and "Traceback" not in err


def test_dataset_info_prints_each_task(dataset, capsys):
    manifest = read_manifest(dataset)
    assert main(["dataset", "info", str(dataset), "--verify"]) == 0
    out = capsys.readouterr().out
    for task_id, task in enumerate(TASKS):
        row = next(line for line in out.splitlines() if f" {task} " in line)
        assert row.split()[:6] == [str(task_id), task, *map(str, TASKS[task]), "2", "1000"]
        assert f"{manifest['returns'][task_id]['mean']:.1f}" in row
    assert "3 tasks, 6 episodes, 3000 transitions" in out
    assert main(["dataset", "info", str(dataset), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert [r["task"] for r in info["tasks"]] == list(TASKS) and info["transitions"] == 3000


def test_collect_from_policy_with_noise(runs, tmp_path):
    run = str(runs["reacher-easy"])
    common = ["collect", run, "--from", "policy", "--episodes", "1", "--seed", "4"]
    assert main([*common, "--out", str(tmp_path / "a"), "--noise", "0.5"]) == 0
    assert main([*common, "--out", str(tmp_path / "b"), "--noise", "0.5"]) == 0
    assert main([*common, "--out", str(tmp_path / "c")]) == 0
    manifest, a = read_dataset(tmp_path / "a")
    (_, b), (_, c) = read_dataset(tmp_path / "b"), read_dataset(tmp_path / "c")
    ea, eb, ec = a["reacher-easy"][0], b["reacher-easy"][0], c["reacher-easy"][0]
    assert len(ea) == 500 and np.abs(ea.action).max() <= 1.0
    np.testing.assert_array_equal(ea.action, eb.action)  # same seed, same data
    np.testing.assert_array_equal(ea.obs[0], ec.obs[0])  # same reset seed
    spread = np.std(ea.action[:-1] - ec.action[:-1])  # the noise (clipped) on top of near-identical actions
    assert 0.2 < spread < 0.8
    record = manifest["runs"][0]
    assert record["source"] == "policy" and record["noise_std"] == 0.5 and record["episodes"] == 1


def test_collect_bad_input_is_one_line(runs, dataset, tmp_path, capsys):
    pixel = tmp_path / "pixel"
    pixel.mkdir()
    config = (runs["cheetah-run"] / "config.yaml").read_text().replace("obs: null", "obs: rgb")
    (pixel / "config.yaml").write_text(config)
    empty = tmp_path / "empty"
    (empty / "checkpoints").mkdir(parents=True)
    shutil.copy(runs["cheetah-run"] / "config.yaml", empty / "config.yaml")
    cases = [([str(tmp_path / "missing")], str(tmp_path / "missing")),
             ([str(runs["cheetah-run"])], str(dataset)),  # --out exists
             ([str(empty)], str(empty / "checkpoints")),
             ([str(pixel)], "pixel run")]
    for index, (run_dirs, named) in enumerate(cases):
        out = str(dataset) if index == 1 else str(tmp_path / f"out{index}")
        capsys.readouterr()
        assert main(["collect", *run_dirs, "--out", out]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and named in err, err
        assert index == 1 or not Path(out).exists()
    with pytest.raises(CollectError, match="--noise applies to --from policy"):
        from algorithms.commands.collect import collect

        collect([runs["cheetah-run"]], tmp_path / "x", noise_std=0.1)


def test_task_sets(monkeypatch):
    assert len(MT30) == 30 and len(MT80) == 80 and MT80[:30] == MT30
    assert MT30[:4] == ("walker-stand", "walker-walk", "walker-run", "cheetah-run") and MT30[-1] == "pendulum-spin"
    assert MT80[30] == "mw-assembly" and MT80[-1] == "mw-hand-insert"
    assert resolve_task_set("cheetah-run, reacher-easy") == ["cheetah-run", "reacher-easy"]
    assert resolve_task_set(["cartpole-balance"]) == ["cartpole-balance"]
    with pytest.raises(TaskSetError, match="unknown task 'cheetah-runn'.*nearest: cheetah-run"):
        resolve_task_set("cheetah-runn,walker-walk")
    assert issubclass(TaskSetError, DatasetError)  # the CLI prints it as one line, exit 2
    import envs

    real = envs.availability
    monkeypatch.setattr(envs, "availability", lambda spec: (False, "suite dmcontrol is not installed: `pip install "
                                                            ".[dmc]`") if spec.name == "reacher-easy" else real(spec))
    with pytest.raises(TaskSetError, match="reacher-easy: suite dmcontrol is not installed"):
        resolve_task_set("mt30")
    assert resolve_task_set("mt30", check_available=False) == list(MT30)


def _write_chunks(src: Path, episodes: dict[str, list], per_chunk: int) -> list[tuple[str, object]]:
    """Write ``episodes`` as TD-MPC2 mt30 chunk files (plain dicts of tensors, padded, dummy first rows), task
    order interleaved; returns the (task, episode) order written."""
    order = [(task, e) for k in range(2) for task in episodes for e in episodes[task][k:k + 1]]
    obs_max, action_max = max(d[0] for d in TASKS.values()), max(d[1] for d in TASKS.values())
    src.mkdir()
    for c in range(0, len(order), per_chunk):
        part = order[c:c + per_chunk]
        steps = len(part[0][1]) + 1
        obs = torch.zeros(len(part), steps, obs_max)
        action = torch.zeros(len(part), steps, action_max)
        reward = torch.zeros(len(part), steps)
        task = torch.zeros(len(part), steps, dtype=torch.int64)
        for i, (name, e) in enumerate(part):
            obs[i, :, :e.obs.shape[1]] = torch.from_numpy(e.obs)
            action[i, 0] = float("nan")
            action[i, 1:, :e.action.shape[1]] = torch.from_numpy(e.action)
            reward[i, 0] = float("nan")
            reward[i, 1:] = torch.from_numpy(e.reward)
            task[i] = MT30.index(name)
        torch.save({"obs": obs, "action": action, "reward": reward, "task": task}, src / f"chunk_{c // per_chunk}.pt")
    return order


def test_tdmpc2_import_gives_the_same_batches_as_native(dataset, tmp_path, capsys):
    _, episodes = read_dataset(dataset)
    _write_chunks(tmp_path / "src", episodes, per_chunk=4)
    out = tmp_path / "imported"
    assert main(["dataset", "import-tdmpc2", str(tmp_path / "src"), "--out", str(out), "--task-set", "mt30"]) == 0
    manifest = read_manifest(out)
    assert manifest["tasks"] == list(MT30) and manifest["source"] == "tdmpc2:mt30"
    for task, (obs_dim, action_dim) in TASKS.items():
        i = MT30.index(task)  # TD-MPC2's task ids are kept
        assert (manifest["obs_dims"][i], manifest["action_dims"][i], manifest["episodes"][i]) == \
            (obs_dim, action_dim, 2)
    # the native dataset written directly from the same episodes, the same task list and sizes
    native = tmp_path / "native"
    write_dataset(native, list(MT30), manifest["obs_dims"], manifest["action_dims"], episodes)
    a, b = open_dataset(out, seed=11), open_dataset(native, seed=11)
    for _ in range(3):
        x, y = a.sample(128, horizon=3), b.sample(128, horizon=3)
        for name in ("obs", "action", "reward", "terminated", "task"):
            np.testing.assert_array_equal(getattr(x, name), getattr(y, name))
    assert {MT30[t] for t in x.task} == set(TASKS)


def test_tdmpc2_import_errors(dataset, tmp_path, capsys):
    _, episodes = read_dataset(dataset)
    _write_chunks(tmp_path / "src", episodes, per_chunk=6)
    # wrong sizes: the padding check catches them and names the file
    code = main(["dataset", "import-tdmpc2", str(tmp_path / "src"), "--out", str(tmp_path / "o1"), "--task-set",
                 "mt30", "--dims", "cheetah-run=10:6"])
    err = capsys.readouterr().err
    assert code == 2 and str(tmp_path / "src" / "chunk_0.pt") in err and "beyond obs size 10" in err, err
    assert err.count("\n") == 1 and not (tmp_path / "o1").exists()
    chunk = tmp_path / "src" / "chunk_0.pt"
    data = torch.load(chunk)
    del data["task"]
    torch.save(data, chunk)
    assert main(["dataset", "import-tdmpc2", str(tmp_path / "src"), "--out", str(tmp_path / "o2"), "--task-set",
                 "mt30"]) == 2
    err = capsys.readouterr().err
    assert str(chunk) in err and "task" in err
    chunk.write_bytes(chunk.read_bytes()[:100])
    assert main(["dataset", "import-tdmpc2", str(tmp_path / "src"), "--out", str(tmp_path / "o3"), "--task-set",
                 "mt30"]) == 2
    assert str(chunk) in capsys.readouterr().err
    with pytest.raises(DatasetError, match="holds no chunk_"):
        from offline.tdmpc2_import import import_tdmpc2

        import_tdmpc2(tmp_path, tmp_path / "o4", "mt30")


def test_offline_sampling_benchmark():
    from tests.test_benchmarks import run_benchmark

    records = run_benchmark("offline_sampling.py", "--tasks", "2", "--episodes", "2", "--length", "20", "--batch",
                            "16", "--steps", "1", "--repeats", "2")
    by_metric = {r["metric"]: r for r in records}
    assert set(by_metric) == {"cache_samples_per_s", "minari_samples_per_s", "speedup"}
    assert by_metric["speedup"]["horizon"] == 3 and by_metric["cache_samples_per_s"]["transitions"] == 80


def test_collect_newest_buffer_episodes(runs, tmp_path):
    assert main(["collect", str(runs["cartpole-balance"]), "--episodes", "1", "--out", str(tmp_path / "one")]) == 0
    _, episodes = read_dataset(tmp_path / "one")
    _, _, expected = _buffer_episodes(runs["cartpole-balance"])
    assert len(episodes["cartpole-balance"]) == 1
    np.testing.assert_array_equal(episodes["cartpole-balance"][0].obs, expected[-1].obs)


@pytest.mark.parametrize("algo", ["tdmpc2", "mbdpo"])
def test_offline_training_on_the_collected_dataset(dataset, tmp_path, algo):
    """The dataset collected from runs above trains both multi-task agents offline: every task is evaluated in its
    environment at each evaluation, and the world model's losses fall (tiny model; tests/test_offline_train.py
    covers the trainer itself on random-action data)."""
    from tests.test_offline_train import agent_args

    results = tmp_path / "results"
    assert main(["train", "--offline", str(dataset), "--algo", algo, "--seed", "2", "--steps", "120",
                 "--results-dir", str(results), "offline.batch_size=32", "eval_every=120", "eval_episodes=1",
                 "log_every=20", "progress=false", "threads=1", *agent_args(algo)]) == 0
    run = results / "runs" / f"{algo}-offline" / dataset.name / "2"
    evals = list(csv.DictReader(open(run / "eval.csv")))
    assert [(r["step"], r["task"]) for r in evals] == [(s, t) for s in ("0", "120") for t in TASKS]
    train = list(csv.DictReader(open(run / "train.csv")))
    first, last = float(train[0]["consistency_loss"]), float(train[-1]["consistency_loss"])
    assert last < first, (first, last)
    assert float(train[-1]["reward_loss"]) < float(train[0]["reward_loss"])
