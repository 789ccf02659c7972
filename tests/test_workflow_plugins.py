"""The workflow treats a plug-in like a built-in (issue 27): an installed algorithm plug-in is planned beside the
built-ins (named, or through `all`), its time requests come from its own estimate or a stated default and the plan
says which, plug-in tasks are named or selected in a config, a broken or unknown algorithm is one PlanError line,
and a plug-in and a built-in train through Snakemake into one analysis.

The plug-ins are the `new-algorithm` template installed with pip into a folder of its own (tests/test_plugins.py's
helpers: no network, the shared venv untouched) and put on sys.path and PYTHONPATH (``use_site``,
tests/helpers.py's ``plugin_sites``)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import yaml

from algorithms.registry import ALGORITHMS, get_algorithm
from envs.registry import get_task
from tests.helpers import plugin_sites
from tests.test_plugins import TOY_TASKS, fake_dist, pip_install
from tests.test_workflow import ROOT, plan, snakemake, tiny_config

PRICED_COST = '''

# the workflow's time requests (workflow/scripts/plan.py): ms per agent step on a CPU node and on a GPU node
COST_MS_PER_ENV_STEP = {"cpu": 2.0, "gpu": 0.5}
'''


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """``linear`` (the template as generated: no cost estimate), ``priced`` (the template with one) and a task
    plug-in (``toy-balance``, ``toy-wide`` of suite ``toysuite``), installed into one folder."""
    from algorithms.commands.new_algorithm import new_algorithm

    root = tmp_path_factory.mktemp("workflow-plugins")
    linear, priced = new_algorithm("linear", root), new_algorithm("priced", root)
    module = priced / "mbdpo_bench_priced" / "__init__.py"
    module.write_text(module.read_text() + PRICED_COST)
    folder = root / "site"
    pip_install(folder, linear, priced)
    fake_dist(folder, "pl-toy-tasks", "[mbdpo_bench.tasks]\ntoy = pl_toy_tasks:tasks\n", {"pl_toy_tasks": TOY_TASKS})
    return folder


@pytest.fixture
def use_site(monkeypatch):
    with plugin_sites(monkeypatch) as activate:
        yield activate


def grid(algorithms: list[str], tasks: list[str] | None = None, steps: int = 1_000_000) -> dict:
    return {"experiments": [{"algorithms": algorithms, "tasks": tasks or ["cartpole-balance"], "seeds": [1],
                             "steps": steps}]}


def expected_runtime(ms_per_step: float, steps: int, task: str) -> int:
    """plan.resources' runtime (minutes) for a per-step cost: ×1.5 safety, at least 10 minutes."""
    return max(10, math.ceil(1.5 * steps * ms_per_step / 60000 / get_task(task).action_repeat))


def test_plan_takes_a_plugin_beside_a_builtin_and_says_where_each_time_request_comes_from(site, use_site):
    use_site(site)
    runs = plan.expand(grid(["sac", "linear", "priced"]))
    assert [r.algo for r in runs] == ["sac", "linear", "priced"]
    plan.check_overrides(runs)  # the plug-ins' configs are built like a built-in's
    assert [plan.blocked(r) for r in runs] == [None, None, None]

    assert plan.cost_source("sac") == "cost table"
    assert plan.cost_source("linear").startswith("default (no estimate for linear: TD-MPC2 6M's")
    assert plan.cost_source("priced") == ("plug-in estimate (mbdpo_bench_priced.COST_MS_PER_ENV_STEP of "
                                          "mbdpo-bench-priced)")
    # offline (an Agent with set_task): the plug-in's COST_MS_PER_UPDATE, else the preset's row, said as such
    assert plan.cost_source("priced", "offline", "1.7M").startswith(
        "default (no estimate for priced: MS_PER_UPDATE's 1.7M row")
    assert plan.estimated_offline_hours("priced", 3600, "1.7M") == plan.MS_PER_UPDATE["1.7M"]["cpu"] / 1000
    by_algo = {r.algo: r for r in runs}
    default = plan.DEFAULT_MS_PER_ENV_STEP
    assert plan.resources(by_algo["linear"], gpu=False)["runtime"] == \
        expected_runtime(default["cpu"], 1_000_000, "cartpole-balance")
    assert plan.resources(by_algo["priced"], gpu=False)["runtime"] == \
        expected_runtime(2.0, 1_000_000, "cartpole-balance")
    assert plan.resources(by_algo["priced"], gpu=True)["runtime"] == \
        expected_runtime(0.5, 1_000_000, "cartpole-balance")

    lines = plan.cost_lines(runs, gpu=False)
    assert lines[0] == "  sac: 1 run(s), cost table"
    assert lines[1].startswith("  linear: 1 run(s), default (no estimate for linear") and \
        lines[1].endswith(f": {default['cpu']:g} ms per agent step on cpu")
    assert lines[2].startswith("  priced: 1 run(s), plug-in estimate (") and lines[2].endswith(": 2 ms per agent "
                                                                                                "step on cpu")


def test_all_means_every_installed_algorithm(site, use_site):
    """The embedded default grid (config/config.yaml, `algorithms: [all]`) takes an installed plug-in as it is."""
    use_site(site)
    runs = plan.expand(yaml.safe_load((ROOT / "config" / "config.yaml").read_text()))
    assert list(dict.fromkeys(r.algo for r in runs)) == [*ALGORITHMS, "linear", "priced"]
    assert len([r for r in runs if r.algo == "linear"]) == 2 * 2  # its tasks and seeds, as every algorithm's
    plan.check_overrides(runs)  # the default's `all` overrides are run keys every algorithm has
    assert not [r for r in runs if plan.blocked(r)]


def test_a_malformed_estimate_is_one_line_naming_the_package(site, use_site, monkeypatch):
    use_site(site)
    monkeypatch.setattr(get_algorithm("priced").load(), "COST_MS_PER_ENV_STEP", {"cpu": "fast"})
    with pytest.raises(plan.PlanError) as err:
        plan.expand(grid(["priced"]))
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("plug-in package mbdpo-bench-priced 0.1.0: mbdpo_bench_priced.COST_MS_PER_ENV_STEP "
                              "must be {'cpu': ms, 'gpu': ms}") and message.endswith("got {'cpu': 'fast'}")


def test_plugin_tasks_are_named_or_selected_in_a_config(site, use_site):
    use_site(site)
    runs = plan.expand(grid(["sac"], ["toy-balance", "suite:toysuite"], steps=100_000))
    assert [r.task for r in runs] == ["toy-balance", "toy-wide"]
    assert [plan.blocked(r) for r in runs] == [None, None]
    # toy-balance repeats each action twice: half the agent steps of toy-wide's for the same env steps
    assert plan.resources(runs[0], gpu=False)["runtime"] == expected_runtime(10.0, 100_000, "toy-balance")
    with pytest.raises(plan.PlanError, match=r"unknown suite 'toys'; valid: dmcontrol, .*, toysuite"):
        plan.expand(grid(["sac"], ["suite:toys"]))


def test_unknown_or_broken_algorithm_is_one_plan_error_line(site, use_site, tmp_path):
    use_site(site)
    with pytest.raises(plan.PlanError) as err:
        plan.expand(grid(["sac", "lineer"]))
    assert str(err.value).startswith("experiments[0].algorithms: unknown algorithm 'lineer'; did you mean linear")
    assert "linear, priced" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(plan.PlanError, match=r"offline.algorithms: give one or more of tdmpc2, mbdpo \(the multi"):
        plan.expand_offline({"offline": {"algorithms": ["linear"], "datasets": {"a": "data/a"}, "seeds": [1],
                                         "steps": 10}})

    broken = tmp_path / "broken"
    fake_dist(broken, "pl-broken-import", "[mbdpo_bench.algorithms]\nbrokenimp = pl_broken_import\n",
              {"pl_broken_import": "import a_module_that_is_not_installed\n"})
    use_site(broken)
    for algorithms in (["sac", "brokenimp"], ["all"]):  # `all` takes every installed plug-in, broken ones too
        with pytest.raises(plan.PlanError) as err:
            plan.expand(grid(algorithms))
        message = str(err.value)
        assert "\n" not in message
        assert message.startswith("experiments[0].algorithms: plug-in package pl-broken-import 0.1 (entry point "
                                  "brokenimp = 'pl_broken_import') fails to import: ModuleNotFoundError")


def test_plugin_and_builtin_train_through_the_workflow_into_one_analysis(site, use_site, tmp_path):
    """A tiny grid (linear and SAC on cartpole-balance, 1,000 env steps) through Snakemake: the plan prints each
    algorithm's cost source, both runs finish and the analysis tables both."""
    use_site(site)
    path = tiny_config(tmp_path, algorithms=["linear", "sac"], overrides={
        "all": {"eval_every": 500, "eval_episodes": 1, "seed_steps": 200, "checkpoint_every": 500},
        "sac": {"agent.batch_size": 32, "agent.hidden_dim": 32}, "linear": {"agent.batch_size": 32}})
    config = yaml.safe_load(path.read_text())
    config["report"] = False  # the HTML report is test_workflow's; here it would only add time
    path.write_text(yaml.safe_dump(config))
    proc = snakemake(tmp_path, "--cores", "2", "--configfile", str(path))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "  linear: 1 run(s), default (no estimate for linear" in out and "  sac: 1 run(s), cost table" in out
    results = tmp_path / "results"
    for algo in ("linear", "sac"):
        marker = json.loads((results / "runs" / algo / "cartpole-balance" / "1" / "complete.json").read_text())
        assert marker["status"] == "finished" and marker["env_steps_done"] == 1000
    info = json.loads((results / "runs" / "linear" / "cartpole-balance" / "1" / "run.json").read_text())
    assert info["algo"] == "linear"
    with open(results / "analysis" / "tables" / "per_domain.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted((row["algorithm"], row["domain"]) for row in rows) == [
        ("linear", "All"), ("linear", "DMControl"), ("sac", "All"), ("sac", "DMControl")]
    assert all(row["step"] == "1000" and math.isfinite(float(row["mean"])) for row in rows)
