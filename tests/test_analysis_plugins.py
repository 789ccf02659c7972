"""The analysis treats a plug-in algorithm and a plug-in task like built-ins (issue 27, item 4, analysis half): a
plug-in's runs (``linear``) beside the paper's (``mbdpo``, ``tdmpc2``) and their released curves are named and
coloured in every figure, tabled, compared in P(improvement) both ways, and leave the claims ledger as it was; a run
on a task the registry lacks (``toy-balance``: its plug-in not installed here) is analysed from its run.json, and one
whose run.json says nothing is reported, never a traceback."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest

from analysis import figures as F
from analysis import ledger as L
from analysis import synthetic
from analysis.load import align, default_grid, load_runs, plugin_algorithms, task_domain
from analysis.report import analyze, gather
from envs.registry import TaskSpec, clear_task_plugin_cache
from tests.test_analysis_figures import check_readable

DMC = ["cartpole-balance", "walker-walk"]
TOY = TaskSpec(name="toy-balance", suite="toysuite", domain="Toy", obs="state", action_repeat=2,
               episode_length=500, source="cartpole/balance", metric="return", budget=100_000)
MYSTERY = TaskSpec(name="mystery-task", suite="toysuite", domain="Toy", obs="state", action_repeat=2,
                   episode_length=500, source="x", metric="return", budget=100_000)
REPS = 50
PAPER_COLOURS = F.colors([*F.ALGORITHM_ORDER, *(f"{a} (published)" for a in F.ALGORITHM_ORDER)])


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """``with/``: mbdpo, tdmpc2 and the plug-in linear on two DMControl tasks, linear on toy-balance (run.json says
    its suite and domain, as the trainer writes them) and on mystery-task (run.json without them); ``without/``:
    the same mbdpo and tdmpc2 run folders, byte for byte; ``published/``: released curves of mbdpo and tdmpc2."""
    root = tmp_path_factory.mktemp("plugins")
    grid = synthetic.curves(["mbdpo", "tdmpc2", "linear"], DMC, seeds=(1, 2), points=6, seed=5,
                            levels={"linear": 40.0})
    specs = {"toy-balance": TOY, "mystery-task": MYSTERY}
    toy = synthetic.curves(["linear"], ["toy-balance", "mystery-task"], seeds=(1, 2), points=6, seed=6, specs=specs)
    synthetic.write_runs(root / "with", pd.concat([grid, toy], ignore_index=True), specs=specs)
    for seed in (1, 2):  # a run.json that records no domain: nothing says where it belongs
        path = root / "with" / "linear" / "mystery-task" / str(seed) / "run.json"
        info = json.loads(path.read_text())
        path.write_text(json.dumps({k: v for k, v in info.items() if k not in ("suite", "domain")}))
    for name in ("mbdpo", "tdmpc2"):  # copies, not rewrites: synthetic draws wall times in order of the runs
        shutil.copytree(root / "with" / name, root / "without" / name)
    synthetic.write_published(root / "published", grid[grid["algorithm"] != "linear"])
    return root


@pytest.fixture(scope="module")
def result(inputs):
    return analyze(inputs / "out", runs=inputs / "with", published=inputs / "published", reps=REPS)


def test_analyze_finishes_and_tables_the_plugin(result):
    out = result.out
    per_domain = pd.read_csv(out / "tables" / "per_domain.csv")
    linear = per_domain[per_domain["algorithm"] == "linear"]
    assert set(linear["domain"]) == {"DMControl", "Toy", "All"}
    assert {"mbdpo", "tdmpc2", "mbdpo (published)", "tdmpc2 (published)"} <= set(per_domain["algorithm"])
    assert int(linear.loc[linear["domain"] == "Toy", "n_tasks"].iloc[0]) == 1
    # the plug-in's column and its task plug-in's domain in the paper's layout (not only the paper's domains)
    paper = pd.read_csv(out / "tables" / "per_domain_paper.csv")
    assert "linear" in paper.columns and "Toy" in set(paper["Domain"])
    assert list(paper["Domain"]).index("Toy") < list(paper["Domain"]).index("All")
    timing = pd.read_csv(out / "tables" / "training_time.csv")
    assert ("linear", "Toy") in set(zip(timing["algorithm"], timing["domain"]))
    units = pd.read_csv(out / "tables" / "step_units.csv").set_index("algorithm")
    assert units.loc["linear", "source"] == "ours" and units.loc["linear", "step_unit"] == "env"  # our runs count env steps
    summary = (out / "summary.md").read_text()
    assert "Plug-in algorithms (run.json `algo` none of the paper's): linear." in summary


def test_unregistered_tasks_are_reported_not_raised(result):
    problems = pd.read_csv(result.out / "tables" / "problems.csv")
    unknown = problems[problems["kind"] == "unknown_task"].set_index(["task", "seed"])["message"]
    assert len(unknown) == 4
    toy = unknown[("toy-balance", 1)]
    assert "analysed with run.json's suite 'toysuite' and domain 'Toy'" in toy and "return task" in toy
    mystery = unknown[("mystery-task", 1)]
    assert "records no domain (domain '?'); not analysed" in mystery
    assert "mystery-task" not in set(pd.read_csv(result.out / "tables" / "aggregate_curves.csv")["domain"])


def test_probability_of_improvement_has_the_plugin_on_either_side(result):
    poi = pd.read_csv(result.out / "tables" / "probability_of_improvement.csv")
    pairs = set(zip(poi["algorithm"], poi["baseline"]))
    assert {("mbdpo", "linear"), ("mbdpo", "tdmpc2"), ("linear", "mbdpo"), ("linear", "tdmpc2"),
            ("linear", "tdmpc2 (published)")} <= pairs
    # the candidate's rows come first and are the ones it had before plug-ins (the same seed)
    assert poi["algorithm"].iloc[0] == "mbdpo"
    both = poi.set_index(["algorithm", "baseline"])["value"]
    assert both[("mbdpo", "linear")] + both[("linear", "mbdpo")] == pytest.approx(1.0)  # complementary by definition
    fig = F.probability_of_improvement_plot(poi)
    ticks = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert "MBDPO vs linear" in ticks and "linear vs TD-MPC2" in ticks and "linear vs MBDPO" in ticks
    assert ticks[::-1].index("MBDPO vs linear") < ticks[::-1].index("linear vs MBDPO")  # the candidate's rows on top
    # a plug-in's long name beside a released copy: every label and the title still inside the figure
    long = poi.replace({"linear": "reward-weighted-linear-regression"})
    check_readable("probability_of_improvement.png", F.probability_of_improvement_plot(long))


def _legend_texts(fig) -> list[str]:
    legends = [*fig.legends, *(ax.get_legend() for ax in fig.axes if ax.get_legend() is not None)]
    return [t.get_text() for legend in legends for t in legend.get_texts()]


def _line_colours(fig) -> dict[str, tuple]:
    return {line.get_label(): tuple(line.get_color()) for ax in fig.axes for line in ax.get_lines()
            if not line.get_label().startswith("_")}


def test_every_algorithm_figure_names_and_colours_the_plugin(result, inputs):
    tables = result.out / "tables"
    curves = pd.read_csv(tables / "aggregate_curves.csv")
    profiles = pd.read_csv(tables / "performance_profiles.csv")
    intervals = pd.read_csv(tables / "interval_estimates.csv")
    data = gather(inputs / "with", inputs / "published")
    aligned, _ = align(data.evals, default_grid(data.evals))
    builds = {"aggregate": lambda: F.aggregate_curves(curves),
              "per task": lambda: F.per_task_curves(aligned[aligned["domain"] == "DMControl"]),
              "profiles": lambda: F.performance_profile_plot(profiles),
              "diagnostics": lambda: F.diagnostics_curves(data.train)}
    for what, build in builds.items():
        first, second = build(), build()
        check_readable(what, first)
        assert "linear" in _legend_texts(first), what
        colours = _line_colours(first)
        assert colours["linear"] not in set(PAPER_COLOURS.values()), what
        assert colours["linear"] != colours["MBDPO"] and colours["linear"] != colours["TD-MPC2"], what
        assert colours == _line_colours(second), what  # stable across calls
    # the aggregate figure's legend names the released curves beside the plug-in's and its Toy-only panel too
    texts = _legend_texts(F.aggregate_curves(curves))
    assert texts.index("linear") > texts.index("TD-MPC2 (published)")  # plug-ins after the paper's algorithms
    toy_only = F.aggregate_curves(curves[(curves["domain"] == "Toy") | (curves["algorithm"] != "linear")])
    assert "linear" in _legend_texts(toy_only)  # drawn only in a later panel, still in the legend
    ticks = [t.get_text() for t in F.interval_plot(intervals, "All").axes[0].get_yticklabels()]
    assert "linear" in ticks


def test_plugin_colours_are_stable_distinct_and_after_the_paper():
    alone = F.colors(["linear"])["linear"]
    together = F.colors(["mbdpo", "tdmpc2", "sac", "linear", "ridge", "linear (published)"])
    assert together["linear"] == alone and together["linear"] not in set(PAPER_COLOURS.values())
    assert together["ridge"] != together["linear"]
    assert together["linear (published)"] != alone and all(p >= c for p, c in zip(together["linear (published)"], alone))
    # names whose hash falls on one spare colour still get two colours when drawn together
    names = [f"plugin{i}" for i in range(12)]
    clash = next((a, b) for a in names for b in names if a < b and F.colors([a])[a] == F.colors([b])[b])
    pair = F.colors(list(clash))
    assert pair[clash[0]] != pair[clash[1]]
    assert F.ordered(["linear", "tdmpc2", "mbdpo", "sac"]) == ["mbdpo", "tdmpc2", "sac", "linear"]


def test_ledger_verdicts_are_the_same_without_the_plugin(inputs):
    with_plugin = load_runs(inputs / "with")
    assert plugin_algorithms(with_plugin.runs) == ["linear"]
    ledgers = [L.build_ledger([L.own_source(load_runs(inputs / folder), reps=REPS)]) for folder in ("with", "without")]
    pd.testing.assert_frame_equal(ledgers[0].summary, ledgers[1].summary)
    pd.testing.assert_frame_equal(ledgers[0].rows, ledgers[1].rows)
    assert not ledgers[0].rows["part"].str.contains("linear").any()
    assert L.own_source(with_plugin).scale == "full"  # the unregistered task's run does not make it "smoke"


TOY_PLUGIN = '''
from envs.registry import TaskSpec


def make(spec, seed):
    raise NotImplementedError("the analysis never makes an env")


def tasks():
    return [TaskSpec(name="toy-balance", suite="toysuite", domain="Toy", obs="state", action_repeat=2,
                     episode_length=500, source="cartpole/balance", metric="return", budget=100_000)], make
'''


@pytest.fixture
def toy_plugin_installed(tmp_path, monkeypatch):
    """The task plug-in of toy-balance installed (a dist-info with the entry point on sys.path, as pip leaves it)."""
    site = tmp_path / "site"
    info = site / "pl_analysis_toy-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: pl-analysis-toy\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[mbdpo_bench.tasks]\ntoy = pl_analysis_toy:tasks\n")
    (site / "pl_analysis_toy.py").write_text(TOY_PLUGIN)
    monkeypatch.syspath_prepend(str(site))
    clear_task_plugin_cache()
    yield
    monkeypatch.undo()
    clear_task_plugin_cache()
    sys.modules.pop("pl_analysis_toy", None)


def test_installed_task_plugin_gives_its_registered_facts(inputs, tmp_path, toy_plugin_installed):
    runs = tmp_path / "runs"
    shutil.copytree(inputs / "with" / "linear" / "toy-balance", runs / "linear" / "toy-balance")
    for path in runs.rglob("run.json"):  # the registry's facts, not run.json's, once the plug-in is installed
        info = json.loads(path.read_text())
        path.write_text(json.dumps({**info, "domain": "Elsewhere"}))
    assert task_domain("toy-balance") == "Toy"
    data = load_runs(runs)
    assert set(data.evals["domain"]) == {"Toy"} and set(data.evals["suite"]) == {"toysuite"}
    assert "unknown_task" not in set(data.problems["kind"])
    assert set(data.train["domain"]) == {"Toy"}
