"""MetaWorld 50 and MyoSuite 10 through the registry (a full episode each), ManiSkill2's adapter on a stand-in."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest

from algorithms.cli import main
from envs import availability, get_task, make_env, task_names
from envs import maniskill2_adapter as ms2

MW_TASKS = task_names(suite="metaworld")
MYO_TASKS = task_names(suite="myosuite")


def test_registry_counts():
    assert len(MW_TASKS) == 50 and len(MYO_TASKS) == 10 and len(task_names(suite="maniskill2")) == 5


def _episode(env, seed: int, actions_seed: int = 0):
    obs, info = env.reset(seed=seed)
    rng = np.random.default_rng(actions_seed)
    trace = [obs]
    steps, successes, rewards = 0, [], []
    while True:
        obs, reward, terminated, truncated, info = env.step(rng.uniform(-1, 1, env.action_space.shape))
        steps += 1
        assert obs.shape == env.observation_space.shape and obs.dtype == np.float32
        assert np.all(np.isfinite(obs)) and np.isfinite(reward)
        assert info["success"] in (0.0, 1.0)
        successes.append(info["success"])
        rewards.append(reward)
        trace.append(obs)
        if terminated or truncated:
            break
    return steps, terminated, np.array(trace), np.array(rewards), successes


@pytest.mark.parametrize("task", MW_TASKS + MYO_TASKS)
def test_full_episode(task):
    spec = get_task(task)
    assert availability(spec) == (True, "")
    env = make_env(task, seed=1)
    assert env.action_space.shape[0] == (4 if spec.suite == "metaworld" else env.action_space.shape[0])
    assert np.all(env.action_space.low == -1) and np.all(env.action_space.high == 1)
    steps, terminated, trace, rewards, _ = _episode(env, seed=7)
    assert steps == spec.episode_length == 100 and not terminated  # suites' own terminations are ignored
    # reproducible: the same seed and actions give the same episode
    _, _, trace2, rewards2, _ = _episode(env, seed=7)
    np.testing.assert_array_equal(trace, trace2)
    np.testing.assert_array_equal(rewards, rewards2)


@pytest.mark.parametrize("task", ["mw-assembly", "mw-reach", "mw-pick-place"])
def test_metaworld_goals_are_reseeded_per_episode(task):
    env = make_env(task, seed=1)
    first = [env.reset(seed=s)[0] for s in (11, 12, 11)]
    goal = slice(36, 39)  # goal-observable: the last three entries
    assert not np.allclose(first[0][goal], first[1][goal])  # different evaluation seeds, different goals
    np.testing.assert_array_equal(first[0], first[2])
    # without a seed the env's own generator moves on: consecutive episodes differ too
    assert not np.allclose(env.reset()[0][goal], env.reset()[0][goal])


def test_metaworld_action_repeat_and_last_step_success(monkeypatch):
    env = make_env("mw-reach", seed=1)
    calls, flags = [], iter([0.0, 1.0, 1.0, 0.0] * 100)

    def fake_step(action):
        calls.append(np.array(action))
        return np.zeros(39), 0.5, False, False, {"success": next(flags)}

    env.reset(seed=1)
    monkeypatch.setattr(env.raw_env, "step", fake_step)
    _, reward, _, _, info = env.step(np.full(4, 2.0))
    assert len(calls) == 2 and reward == 1.0  # action repeat 2, rewards summed
    assert np.all(calls[0] == 1.0)  # actions clipped to [-1, 1]
    assert info["success"] == 1.0  # the success of the last simulator step (0 then 1)
    _, _, _, _, info = env.step(np.zeros(4))
    assert info["success"] == 0.0  # 1 then 0: the last step counts, not "any step"


def test_cli_tasks_reports_the_suites():
    import io
    from contextlib import redirect_stdout

    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["tasks", "--json"]) == 0
    records = {r["name"]: r for r in json.loads(out.getvalue())}
    assert all(records[t]["available"] for t in MW_TASKS + MYO_TASKS)
    assert not any(records[t]["available"] for t in task_names(suite="maniskill2"))
    assert all(records[t]["reason"] for t in task_names(suite="maniskill2"))


# ------------------------------------------------------------------------------------------------ ManiSkill2

class FakeManiSkill2Env:
    """A stand-in of a ManiSkill2 0.5 env: gymnasium API, flat state, a controller's action box, info success."""

    def __init__(self, low=-1.0, high=1.0, obs_dim=9, action_dim=4):
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32)
        self.action_space = gym.spaces.Box(low, high, (action_dim,), np.float32)
        self.actions, self.seeds, self.t = [], [], 0

    def reset(self, seed=None, options=None):
        self.seeds.append(seed)
        self.t = 0
        return np.full(self.observation_space.shape, float(seed or 0), np.float64), {}

    def step(self, action):
        self.actions.append(np.array(action))
        self.t += 1
        return np.full(self.observation_space.shape, self.t, np.float64), 1.0, False, False, {"success": self.t % 3 == 0}


def test_maniskill2_wrapper_on_a_stand_in():
    fake = FakeManiSkill2Env(low=-0.1, high=0.3)
    env = ms2.ManiSkill2Env(get_task("lift-cube"), seed=5, make_raw=lambda spec: fake)
    obs, _ = env.reset()
    assert fake.seeds == [5] and obs.dtype == np.float32 and obs.shape == (9,)  # the constructor's seed first
    env.reset(seed=9)
    assert fake.seeds[-1] == 9
    obs, reward, terminated, truncated, info = env.step(np.array([-1.0, 1.0, 0.0, 3.0]))
    assert reward == 2.0 and len(fake.actions) == 2  # action repeat 2
    np.testing.assert_allclose(fake.actions[0], [-0.1, 0.3, 0.1, 0.3])  # [-1, 1] → the controller's box, clipped
    assert info["success"] == 0.0  # steps 1, 2: the last (2) is not a success
    for _ in range(99):
        *_, truncated, info = env.step(np.zeros(4))
    assert truncated and fake.t == 200  # 100 agent steps
    pixels = FakeManiSkill2Env()
    pixels.observation_space = gym.spaces.Box(0, 255, (3, 8, 8), np.uint8)
    with pytest.raises(ValueError, match="flat state"):
        ms2.ManiSkill2Env(get_task("lift-cube"), make_raw=lambda spec: pixels)


def test_maniskill2_reasons(monkeypatch, tmp_path):
    spec = get_task("pick-ycb")
    monkeypatch.setattr(ms2.importlib.util, "find_spec", lambda name: None)
    assert "not installed" in ms2.unavailable_reason(spec) and "maniskill2.yaml" in ms2.unavailable_reason(spec)
    monkeypatch.setattr(ms2.importlib.util, "find_spec", lambda name: object())
    monkeypatch.setattr(ms2, "VULKAN_ICD_DIRS", (str(tmp_path / "icd"),))
    (tmp_path / "icd").mkdir()
    (tmp_path / "icd" / "lvp_icd.x86_64.json").write_text("{}")
    reason = ms2.unavailable_reason(spec)
    assert "no Vulkan GPU device" in reason and "lvp_icd" in reason
    (tmp_path / "icd" / "nvidia_icd.json").write_text("{}")
    monkeypatch.setenv("MS2_ASSET_DIR", str(tmp_path / "assets"))
    reason = ms2.unavailable_reason(spec)
    assert "assets missing" in reason and "mani_skill2_ycb" in reason and "download_asset ycb" in reason
    assert ms2.unavailable_reason(get_task("lift-cube")) is None  # no assets needed
    (tmp_path / "assets" / "mani_skill2_ycb").mkdir(parents=True)
    (tmp_path / "assets" / "mani_skill2_ycb" / "info_pick_v0.json").write_text("{}")
    assert ms2.unavailable_reason(spec) is None
    assert "partnet_mobility" in ms2.unavailable_reason(get_task("turn-faucet"))


# --------------------------------------------------------------------------------------------------- doctor

def test_doctor_flags_known_bad_combinations():
    from envs.doctor import installed_versions, problems

    good = {"mujoco": "3.16.0", "metaworld": "3.0.0", "dm_control": "1.0.49", "gymnasium": "1.2.3",
            "myosuite": "3.0.0", "pandas": "2.3.3", "arch": "7.2.0", "numpy": "2.4.6", "mani_skill2": None,
            "setuptools": "80.10.2"}
    assert problems(good) == []
    assert problems(installed_versions()) == []  # this environment is one of the good ones
    bad = problems({**good, "mujoco": "3.17.0"})
    assert len(bad) == 1 and bad[0].startswith("mujoco 3.17.0 with metaworld 3.0.0") and "mujoco==3.16.0" in bad[0]
    assert problems({**good, "mujoco": "3.17.0", "metaworld": None}) == []  # only with metaworld
    assert any("pandas 3.0.1 with arch" in p for p in problems({**good, "pandas": "3.0.1"}))
    assert any("numpy 2.4.6 with mani_skill2" in p for p in problems({**good, "mani_skill2": "0.5.3"}))
    assert any(p.startswith("metaworld 3.1.0:") for p in problems({**good, "metaworld": "3.1.0"}))
    assert any("gymnasium 1.3.0 with myosuite" in p for p in problems({**good, "gymnasium": "1.3.0"}))


def test_cli_doctor(capsys):
    assert main(["doctor", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["versions"]["mujoco"] == "3.16.0" and report["problems"] == []
    assert report["domains"]["MetaWorld"] == {"available": 50, "total": 50}
    assert report["domains"]["ManiSkill2"]["available"] == 0 and report["reasons"]["ManiSkill2"]
