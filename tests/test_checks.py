import json

import pytest

from algorithms.cli import main
from algorithms.commands.checks import available_checks, judge, load_check
from algorithms.common.config import ConfigError


def test_every_check_loads_a_valid_config():
    assert {"sac-cartpole-cpu", "tdmpc2-cartpole-cpu", "tdmpc2-cartpole-gpu", "tdmpc2-reacher-gpu"} <= set(available_checks())
    for name in available_checks():
        cfg, criterion = load_check(name)
        assert cfg.name == f"check-{name}" and criterion["min_return"] > 0 and criterion["by_step"] <= cfg.steps
    cfg, _ = load_check("tdmpc2-cartpole-cpu")
    assert (cfg.agent.model_size, cfg.agent.num_samples, cfg.steps) == ("1.7M", 128, 40000)


def test_unknown_check_lists_valid_ones(capsys):
    with pytest.raises(ConfigError, match="unknown learning check 'nope'; valid: .*dreamerv3-cartpole-cpu, .*mbdpo-cartpole-cpu, .*sac-cartpole-cpu"):
        load_check("nope")
    assert main(["validate", "--list"]) == 0
    assert "tdmpc2-cartpole-cpu" in capsys.readouterr().out


@pytest.mark.parametrize("rows, criterion, passed", [
    ([(0, 100), (10, 750), (20, 600)], {"min_return": 700, "by_step": 20}, True),
    ([(0, 100), (10, 650), (30, 900)], {"min_return": 700, "by_step": 20}, False),
    ([(0, 100), (10, 950), (20, 880)], {"min_return": 900, "by_step": 20, "at_step": True}, False),
])
def test_judge(tmp_path, rows, criterion, passed):
    (tmp_path / "eval.csv").write_text("step,episode_return\n" + "".join(f"{s},{r}\n" for s, r in rows))
    (tmp_path / "run.json").write_text(json.dumps({"wall_time_s": 12.5}))
    result = judge("x", tmp_path / "eval.csv", criterion)
    assert result.passed is passed and result.wall_time_s == 12.5


def test_overrides_may_follow_options(capsys):
    assert main(["train", "seed=2", "--steps", "5", "agent.lrr=1"]) == 2
    assert "unknown config key 'agent.lrr'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--bogus-flag"])
