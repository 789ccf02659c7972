"""Algorithms and tasks as plug-ins (issue 27): the ``new-algorithm`` package installed with pip into a folder of its
own (no network, the shared venv untouched), listed, trained, resumed bit for bit, analysed and checked by
``check-algorithm``; broken algorithm plug-ins and bad task plug-ins each one line naming their package."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from algorithms.cli import main
from algorithms.registry import clear_plugin_cache, get_algorithm
from tests.helpers import assert_resumes_bit_for_bit

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--task", "cartpole-balance", "--seed", "3", "--steps", "3000", "seed_steps=100", "eval_every=1000",
        "eval_episodes=1", "checkpoint_every=1000", "keep_checkpoints=3", "progress=false", "log_every=500",
        "threads=1"]


def pip_install(site: Path, *packages: Path) -> None:
    """pip into ``site`` only: no index, no dependencies, the venv's own setuptools (no build isolation)."""
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(site), *map(str, packages)], check=True, capture_output=True)


def fake_dist(site: Path, package: str, entry_points: str, modules: dict[str, str]) -> None:
    """An installed distribution as pip leaves it (dist-info with METADATA and entry_points.txt), without a build."""
    info = site / f"{package.replace('-', '_')}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(entry_points)
    for module, text in modules.items():
        (site / f"{module}.py").write_text(text)


TOY_TASKS = '''
import gymnasium as gym
import numpy as np
from envs import make_env
from envs.registry import TaskSpec


class Wide(gym.Env):
    observation_space = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
    action_space = gym.spaces.Box(-2.0, 2.0, (1,), np.float32)


def make(spec, seed):
    return Wide() if spec.name == "toy-wide" else make_env("cartpole-balance", seed=seed)


def tasks():
    spec = TaskSpec(name="toy-balance", suite="toysuite", domain="Toy", obs="state", action_repeat=2,
                    episode_length=500, source="cartpole/balance", metric="return", budget=100_000)
    wide = TaskSpec(name="toy-wide", suite="toysuite", domain="Toy", obs="state", action_repeat=1,
                    episode_length=10, source="wide", metric="return", budget=1000)
    return [spec, wide], make
'''

BAD_TASKS = '''
from envs.registry import TaskSpec


def tasks():
    common = dict(suite="badsuite", domain="Bad", obs="state", action_repeat=2, episode_length=500, source="x",
                  metric="return", budget=1000)
    return [TaskSpec(name="cartpole-balance", **common), TaskSpec(name="my task", **common),
            TaskSpec(name="bad-fine", **common)], lambda spec, seed: None
'''


@pytest.fixture(scope="module")
def good_site(tmp_path_factory) -> Path:
    """The template package (``linear``), the same with an incomplete state_dict (``leaky``), a task plug-in."""
    from algorithms.commands.new_algorithm import new_algorithm

    root = tmp_path_factory.mktemp("plugins")
    linear, leaky = new_algorithm("linear", root), new_algorithm("leaky", root)
    module = leaky / "mbdpo_bench_leaky" / "__init__.py"
    text = module.read_text()
    dropped = (', "optim": self.optim.state_dict()', '        self.optim.load_state_dict(state["optim"])\n')
    assert all(part in text for part in dropped)
    module.write_text(text.replace(dropped[0], "").replace(dropped[1], ""))  # forgets Adam's moments
    site = root / "site"
    pip_install(site, linear, leaky)
    fake_dist(site, "pl-toy-tasks", "[mbdpo_bench.tasks]\ntoy = pl_toy_tasks:tasks\n", {"pl_toy_tasks": TOY_TASKS})
    return site


@pytest.fixture(scope="module")
def bad_site(tmp_path_factory) -> Path:
    site = tmp_path_factory.mktemp("bad") / "site"
    fake_dist(site, "pl-broken-import", "[mbdpo_bench.algorithms]\nbrokenimp = pl_broken_import\n",
              {"pl_broken_import": "import a_module_that_is_not_installed\n"})
    fake_dist(site, "pl-no-agent", "[mbdpo_bench.algorithms]\nnoagent = pl_no_agent\n",
              {"pl_no_agent": "from dataclasses import dataclass\n\n\n@dataclass\nclass Config:\n    lr: float = 1.0\n"})
    fake_dist(site, "pl-clash", "[mbdpo_bench.algorithms]\nsac = pl_clash\n", {"pl_clash": '"""Another SAC."""\n'})
    fake_dist(site, "pl-bad-tasks", "[mbdpo_bench.tasks]\nbad = pl_bad_tasks:tasks\n", {"pl_bad_tasks": BAD_TASKS})
    return site


@pytest.fixture
def use_site(monkeypatch):
    """Put a site folder on sys.path (and PYTHONPATH, for subprocesses) and find plug-ins again; afterwards forget
    them and the modules imported from there."""
    def activate(site: Path) -> None:
        monkeypatch.syspath_prepend(str(site))
        monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site), str(ROOT)]))
        clear_plugin_cache()

    yield activate
    clear_plugin_cache()
    for name in [m for m in sys.modules if m.startswith(("mbdpo_bench_", "pl_"))]:
        del sys.modules[name]


def test_new_algorithm_is_listed_in_process_and_through_pythonpath(good_site, use_site, capsys):
    use_site(good_site)
    assert main(["algorithms"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("linear "))
    assert "mbdpo-bench-linear" in row and "0.1.0" in row and "online" in row and "offline" not in row
    assert "A linear policy trained by reward-weighted regression" in row
    assert get_algorithm("linear").package == "mbdpo-bench-linear"
    done = subprocess.run([sys.executable, "-m", "algorithms.cli", "algorithms", "--json"], cwd=ROOT,
                          capture_output=True, text=True, env=os.environ, timeout=300)
    assert done.returncode == 0, done.stderr
    listed = {r["name"]: r for r in json.loads(done.stdout)["algorithms"]}
    assert listed["linear"]["version"] == "0.1.0" and listed["tdmpc2"]["modes"] == "online+offline"


def test_plugin_trains_resumes_bit_for_bit_and_is_analysed(good_site, use_site, tmp_path, capsys):
    use_site(good_site)
    reference = assert_resumes_bit_for_bit(["train", "--algo", "linear", *TINY], tmp_path,
                                           "runs/linear/cartpole-balance/3", capsys, compare_train=True)
    info = json.loads((reference / "run.json").read_text())
    assert info["algo"] == "linear" and info["versions"]["mbdpo-bench-linear"] == "0.1.0"
    from analysis.load import load_runs

    runs = load_runs(tmp_path / "a" / "runs")
    assert set(runs.evals["algorithm"]) == {"linear"} and len(runs.evals) == 4


def test_check_algorithm_passes_on_the_template(good_site, use_site, capsys):
    use_site(good_site)
    assert main(["check-algorithm", "linear", "threads=1"]) == 0
    out = capsys.readouterr().out
    assert out.count("PASS  ") == 6 and "all 6 checks passed" in out


def test_check_algorithm_names_an_incomplete_state_dict(good_site, use_site, capsys):
    use_site(good_site)
    assert main(["check-algorithm", "leaky", "threads=1"]) == 1
    lines = capsys.readouterr().out.splitlines()
    failed = [line for line in lines if line.startswith("FAIL")]
    assert [line.split("  ")[1].strip() for line in failed] == ["state_dict round trip", "resume bit for bit"]
    assert "optimiser moments" in failed[0] and "differs" in failed[1]


def test_broken_algorithm_plugins_are_one_line_each(bad_site, use_site, tmp_path, capsys):
    use_site(bad_site)
    assert main(["algorithms"]) == 1
    problems = [line for line in capsys.readouterr().out.splitlines() if line.startswith("problem:")]
    assert len(problems) == 3
    for package, says in (("pl-broken-import", "fails to import: ModuleNotFoundError"),
                          ("pl-no-agent", "has no Agent class"), ("pl-clash", "clashes with the built-in")):
        assert sum(package in line and says in line for line in problems) == 1, problems
    for algo, package in (("brokenimp", "pl-broken-import"), ("noagent", "pl-no-agent"), ("sac", "pl-clash")):
        code = main(["train", "--algo", algo, "--steps", "10", "--results-dir", str(tmp_path)])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and package in err[0] and err[0].startswith("mbdpo-bench: error:")
    assert not (tmp_path / "runs").exists()


def test_task_plugin_is_listed_made_and_trained(good_site, use_site, tmp_path, capsys):
    from envs import TaskPluginError, make_env

    use_site(good_site)
    assert main(["tasks", "--suite", "toysuite"]) == 0
    out = capsys.readouterr().out
    assert any(line.startswith("toy-balance") and "toysuite" in line and "yes" in line for line in out.splitlines())
    env = make_env("toy-balance", seed=0)
    assert env.observation_space.shape == (5,)
    with pytest.raises(TaskPluginError, match=r"pl-toy-tasks.*\[-2.0, 2.0\].*\[-1, 1\]"):
        make_env("toy-wide", seed=0)
    assert main(["train", "--algo", "linear", "--task", "toy-balance", "--steps", "1000", "seed_steps=100",
                 "eval_episodes=1", "progress=false", "threads=1", "--results-dir", str(tmp_path)]) == 0
    info = json.loads((tmp_path / "runs" / "linear" / "toy-balance" / "1" / "run.json").read_text())
    assert info["status"] == "finished" and info["suite"] == "toysuite"


def test_bad_task_plugins_are_one_line_each(bad_site, use_site, capsys):
    from envs import TaskPluginError, get_task

    use_site(bad_site)
    assert main(["tasks", "--suite", "badsuite"]) == 1
    out = capsys.readouterr().out
    problems = [line for line in out.splitlines() if line.startswith("problem:")]
    assert len(problems) == 2 and all("pl-bad-tasks" in line for line in problems)
    assert any("clashes with the built-in task 'cartpole-balance'" in line for line in problems)
    assert any("'my task' has spaces" in line for line in problems)
    assert "bad-fine" in out and "1 tasks" in out  # the package's good task stays usable
    with pytest.raises(TaskPluginError, match="pl-bad-tasks"):
        get_task("cartpole-balance")  # a name two packages claim is refused, not guessed


def test_new_algorithm_refuses_a_builtin_name_and_an_existing_folder(tmp_path, capsys):
    assert main(["new-algorithm", "sac", "--out", str(tmp_path)]) == 2
    assert main(["new-algorithm", "Bad-Name", "--out", str(tmp_path)]) == 2
    assert main(["new-algorithm", "mine", "--out", str(tmp_path)]) == 0
    assert main(["new-algorithm", "mine", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3 and "built in" in err[0] and "lower-case" in err[1] and "exists" in err[2]
