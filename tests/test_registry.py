import json

import pytest

from algorithms.cli import main
from envs import SuiteNotInstalledError, UnknownTaskError, availability, get_task, make_env, task_names
from envs.registry import DMC_CUSTOM, TASKS


def test_registry_has_the_papers_114_entries_by_domain():
    assert len(TASKS) == 114
    counts = {d: len(task_names(domain=d)) for d in ("DMControl", "MetaWorld", "ManiSkill2", "MyoSuite", "Visual RL")}
    assert counts == {"DMControl": 39, "MetaWorld": 50, "ManiSkill2": 5, "MyoSuite": 10, "Visual RL": 10}
    assert sum(spec.custom for spec in TASKS.values()) == len(DMC_CUSTOM) == 11


def test_task_rules_follow_tasks_md():
    dmc, mw, myo = get_task("cheetah-run"), get_task("mw-assembly"), get_task("myo-key-turn")
    assert (dmc.action_repeat, dmc.episode_length, dmc.discount, dmc.seed_steps) == (2, 500, 0.99, 2500)
    assert (mw.action_repeat, mw.episode_length, mw.discount, mw.seed_steps) == (2, 100, 0.95, 1000)
    assert (myo.action_repeat, myo.source) == (1, "myoHandKeyTurnFixed-v0")
    assert get_task("myo-key-turn-hard").source == "myoHandKeyTurnRandom-v0"
    assert get_task("cup-catch").source == "ball_in_cup/catch"
    assert get_task("finger-turn-easy").source == "finger/turn_easy"
    assert get_task("quadruped-walk-pixels").camera_id == 2 and get_task("walker-walk-pixels").camera_id == 0
    assert get_task("pick-ycb").controller == "pd_ee_delta_pose"


def test_pixel_entries_are_reached_by_obs():
    assert get_task("cheetah-run", obs="rgb").name == "cheetah-run-pixels"
    assert get_task("cheetah-run-pixels", obs="state").name == "cheetah-run"
    unregistered = get_task("cartpole-swingup", obs="rgb")
    assert (unregistered.obs, unregistered.frame_stack) == ("rgb", 3)
    with pytest.raises(ValueError, match="'state' only"):
        get_task("mw-reach", obs="rgb")
    with pytest.raises(ValueError, match="obs='depth'"):
        get_task("cheetah-run", obs="depth")


def test_unknown_task_lists_near_names():
    with pytest.raises(UnknownTaskError) as err:
        get_task("cheetah-runn")
    assert "cheetah-runn" in str(err.value) and "cheetah-run" in str(err.value).split("nearest:")[1]


def test_suites_not_installed_raise_one_clear_error(monkeypatch):
    import envs

    real_find_spec = envs.importlib.util.find_spec
    monkeypatch.setattr(envs.importlib.util, "find_spec",
                        lambda name, *a: None if name == "metaworld" else real_find_spec(name, *a))
    assert availability(get_task("mw-assembly")) == (False, "suite metaworld is not installed: `pip install .[metaworld]`")
    with pytest.raises(SuiteNotInstalledError, match=r"suite metaworld is not installed: `pip install \.\[metaworld\]`"):
        make_env("mw-assembly", seed=0)
    with pytest.raises(SuiteNotInstalledError, match="cannot create task 'lift-cube'"):
        make_env("lift-cube", seed=0)  # ManiSkill2 never runs here: its own environment, a Vulkan GPU


def test_tasks_json_lists_every_entry(capsys):
    assert main(["tasks", "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert len(records) == 114
    for key in ("name", "suite", "obs", "action_repeat", "episode_length", "available", "reason"):
        assert all(key in r for r in records)
    dmc = [r for r in records if r["suite"] == "dmcontrol"]
    assert len(dmc) == 49 and all(r["available"] for r in dmc)
    assert all(r["available"] for r in records if r["suite"] in ("metaworld", "myosuite"))
    assert all(not r["available"] and r["reason"] for r in records if r["suite"] == "maniskill2")


def test_tasks_table(capsys):
    assert main(["tasks", "--suite", "Visual RL"]) == 0
    out = capsys.readouterr().out
    assert "walker-walk-pixels" in out and "10 tasks" in out
