import pytest

from algorithms.common.config import ConfigError, RunConfig, apply_overrides, coerce, config_hash, parse_overrides
from algorithms.common.configure import build_config
from algorithms.sac import Config as SACConfig


def test_overrides_reach_run_and_agent_keys_with_types():
    cfg = build_config("sac", overrides=parse_overrides(
        ["seed=4", "steps=2e4", "agent.lr=1e-3", "batch_size=64", "gamma=none", "loggers=tensorboard,wandb",
         "progress=false"]))
    assert (cfg.seed, cfg.steps, cfg.agent.lr, cfg.agent.batch_size) == (4, 20000, 1e-3, 64)
    assert cfg.agent.gamma is None and cfg.loggers == ["tensorboard", "wandb"] and cfg.progress is False


def test_yaml_file_then_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("task: walker-walk\nseed: 2\nagent:\n  hidden_dim: 128\n  lr: 0.001\n")
    cfg = build_config(config_file=str(path), overrides={"seed": "9"})
    assert (cfg.task, cfg.seed, cfg.agent.hidden_dim, cfg.agent.lr) == ("walker-walk", 9, 128, 0.001)
    path.write_text("agent:\n  hiden_dim: 128\n")
    with pytest.raises(ConfigError, match="unknown config key 'agent.hiden_dim'; did you mean 'agent.hidden_dim'"):
        build_config(config_file=str(path))
    path.write_text("seed: [1, 2]\n")
    with pytest.raises(ConfigError, match=r"config key 'seed' expects int, got \[1, 2\]"):
        build_config(config_file=str(path))
    with pytest.raises(ConfigError, match="does not exist"):
        build_config(config_file=str(tmp_path / "missing.yaml"))


@pytest.mark.parametrize("value, tp, expected", [
    ("3", int, 3), ("1e5", int, 100000), ("1_000", int, 1000), ("0.5", float, 0.5), ("yes", bool, True),
    ("off", bool, False), ("null", int | None, None), ("a,b", list[str], ["a", "b"]),
])
def test_coerce(value, tp, expected):
    assert coerce("k", value, tp) == expected


@pytest.mark.parametrize("value, tp", [("2.5", int), ("x", float), ("maybe", bool), (True, int), (None, int)])
def test_coerce_rejects(value, tp):
    with pytest.raises(ConfigError, match="config key 'k'"):
        coerce("k", value, tp)


def test_bad_values_are_named():
    with pytest.raises(ConfigError, match="'agent.tau' must lie in"):
        build_config("sac", overrides={"tau": "2"})
    with pytest.raises(ConfigError, match="unknown task 'walker-wlak'"):
        build_config("sac", overrides={"task": "walker-wlak"})
    cfg = RunConfig(agent=SACConfig())
    with pytest.raises(ConfigError, match="unknown config key 'stepz'; did you mean 'steps'"):
        apply_overrides(cfg, {"stepz": "1"})


def test_config_hash_ignores_seed_and_non_semantic_keys():
    a = build_config("sac", overrides={"seed": "1", "device": "cpu", "results_dir": "/x"})
    b = build_config("sac", overrides={"seed": "2"})
    c = build_config("sac", overrides={"agent.lr": "0.1"})
    assert config_hash(a) == config_hash(b) != config_hash(c)


@pytest.mark.parametrize("logger", ["tensorboard", "wandb"])
def test_optional_logger_without_its_package_says_how_to_install(logger, tmp_path):
    import importlib.util

    from algorithms.common.sinks import make_sinks

    if importlib.util.find_spec(logger) is not None:
        sinks = make_sinks([logger], tmp_path, "run", {})  # installed: the sink is created
        assert len(sinks) == 1
        return
    with pytest.raises(ConfigError, match=rf"logger '{logger}' needs the {logger} package: pip install \.\[logging\]"):
        make_sinks([logger], tmp_path, "run", {})


def test_unknown_logger_is_named(tmp_path):
    from algorithms.common.sinks import make_sinks

    with pytest.raises(ConfigError, match="unknown logger 'mlflow'; valid: tensorboard, wandb"):
        make_sinks(["mlflow"], tmp_path, "run", {})


def test_render_shadows_key_defaults_on_and_reaches_make_env(monkeypatch, tmp_path):
    """FIDELITY.md D5: shadows on by default (as released); ``render_shadows=false`` reaches make_env."""
    from algorithms.common import online_loop as trainer

    assert build_config("sac").render_shadows is True
    cfg = build_config("sac", overrides={"render_shadows": "false", "task": "cartpole-swingup", "obs": "rgb"})
    assert cfg.render_shadows is False
    with pytest.raises(ConfigError, match="render_shadows.*bool.*'maybe'"):
        build_config("sac", overrides={"render_shadows": "maybe"})

    calls = []

    def fake_make_env(*args, **kwargs):
        calls.append(kwargs)
        raise RuntimeError("stop after make_env")

    monkeypatch.setattr(trainer, "make_env", fake_make_env)
    with pytest.raises(RuntimeError, match="stop after make_env"):
        trainer.OnlineTrainer(cfg, tmp_path)
    assert calls == [{"seed": cfg.seed, "obs": "rgb", "shadows": False}]


@pytest.mark.parametrize("algo,override,key", [
    ("sac", "agent.lr=-1", "agent.lr"), ("tdmpc2", "agent.lr=-1", "agent.lr"), ("mbdpo", "agent.lr=0", "agent.lr"),
    ("dreamerv3", "agent.lr=-1e-4", "agent.lr"), ("tdmpc2", "agent.dropout=1.5", "agent.dropout"),
    ("mbdpo", "agent.tau=0", "agent.tau"), ("tdmpc2", "agent.lr=nan", "agent.lr"),
    ("dreamerv3", "agent.unimix=-0.1", "agent.unimix")])
def test_out_of_range_hyper_parameters_stop_before_any_run_file(algo, override, key, tmp_path, capsys):
    """A value torch would reject (or silently misuse) is one message naming the key; no run folder is made."""
    from algorithms.cli import main

    code = main(["train", "--algo", algo, "--task", "cartpole-balance", "--steps", "1000",
                 "--results-dir", str(tmp_path), override])
    err = capsys.readouterr().err
    assert code != 0 and key in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()
