"""The analysis' outputs: `mbdpo-bench analyze`, the paper's figures and tables, ablation/scaling inputs, t-SNE."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.figure import Figure

from algorithms.cli import main
from analysis import figures as F
from analysis import synthetic
from analysis import tables as T
from analysis.embedding import find_task_embedding, load_task_embedding, tsne_embedding
from analysis.report import ablation_values, analyze, scaling_values
from envs.registry import TASKS

TASKS_USED = ["cartpole-balance", "walker-walk", "mw-assembly", "mw-reach", "myo-reach", "lift-cube",
              "cheetah-run-pixels"]
REPS = 100
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def grid():
    return synthetic.curves(["mbdpo", "tdmpc2", "sac"], TASKS_USED, seeds=(1, 2, 3), points=6, seed=3)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, grid):
    root = tmp_path_factory.mktemp("analysis")
    synthetic.write_published(root / "published", grid)
    synthetic.write_runs(root / "runs", grid)
    return root


@pytest.fixture(scope="module")
def result(inputs):
    return analyze(inputs / "out", runs=inputs / "runs", published=inputs / "published", reps=REPS)


def _is_png(path) -> bool:
    return path.read_bytes()[:8] == PNG_MAGIC


def test_analyze_writes_the_tables_and_figures(result):
    out = result.out
    for name in ("per_domain", "per_domain_paper", "probability_of_improvement", "training_time"):
        for suffix in (".csv", ".md", ".tex"):
            assert (out / "tables" / f"{name}{suffix}").stat().st_size > 0, name + suffix
    for name in ("aggregate_curves", "interval_estimates", "performance_profiles", "probability_of_improvement",
                 "diagnostics", "per_task_dmcontrol", "per_task_visual_rl"):
        assert _is_png(out / "figures" / f"{name}.png"), name
    assert all(p.exists() for p in result.written)
    assert not list(out.rglob("*.tmp"))
    summary = (out / "summary.md").read_text()
    assert "Per-domain normalised score" in summary and "None: every expected run was read." in summary


def test_per_domain_table_contract(result, inputs):
    table = pd.read_csv(result.out / "tables" / "per_domain.csv")
    assert {"algorithm", "domain", "n_tasks", "step", "mean", "iqm", "iqm_low", "iqm_high"} <= set(table.columns)
    assert set(table["domain"]) == {"DMControl", "MetaWorld", "ManiSkill2", "MyoSuite", "Visual RL", "All"}
    # ours and the released copies of the same curves are kept apart, never averaged
    assert {"mbdpo", "mbdpo (published)", "sac", "sac (published)"} <= set(table["algorithm"])
    per_domain = table[table["domain"] != "All"]
    budgets = {d: TASKS[t].budget for t in TASKS_USED for d in [TASKS[t].domain]}
    assert all(per_domain["step"] == per_domain["domain"].map(budgets))
    assert table[["mean", "iqm"]].stack().between(0, 100).all()
    assert (table["iqm_low"] <= table["iqm"] + 1e-9).all() and (table["iqm"] <= table["iqm_high"] + 1e-9).all()
    assert dict(zip(per_domain["domain"], per_domain["n_tasks"]))["MetaWorld"] == 2
    # DMControl returns round-trip exactly through the released format (reward = return)
    dmc = table[table["domain"] == "DMControl"].set_index("algorithm")["mean"]
    assert dmc["mbdpo"] == pytest.approx(dmc["mbdpo (published)"])
    # hand check of one mean: the per-run scores at the budget end, averaged
    g = synthetic.curves(["mbdpo", "tdmpc2", "sac"], TASKS_USED, seeds=(1, 2, 3), points=6, seed=3)
    last = g[(g["algorithm"] == "sac") & g["task"].isin(["cartpole-balance", "walker-walk"])]
    last = last[last["step"] == last.groupby("task")["step"].transform("max")]
    assert dmc["sac"] == pytest.approx(last["score"].mean())


def test_cli_analyze_at_step_and_problems(inputs, tmp_path, capsys):
    published = tmp_path / "published"
    synthetic.write_published(published, synthetic.curves(["mbdpo", "tdmpc2"], ["cartpole-balance", "walker-walk"],
                                                           points=5))
    (published / "tdmpc2" / "walker-walk.csv").write_text("step,reward\nnot,a,csv\n")
    out = tmp_path / "out"
    code = main(["analyze", "--published", str(published), "--at-step", "1000000", "--out", str(out),
                 "--reps", str(REPS), "--no-per-task"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "1 corrupt" in printed and "problems.csv" in printed
    table = pd.read_csv(out / "tables" / "per_domain.csv")
    assert set(table.loc[table["domain"] != "All", "step"]) == {1_000_000}
    problems = pd.read_csv(out / "tables" / "problems.csv")
    assert str(published / "tdmpc2" / "walker-walk.csv") in set(problems.loc[problems["kind"] == "corrupt", "path"])


def test_cli_analyze_strict_fails_on_a_corrupt_file(tmp_path, capsys):
    published = tmp_path / "published"
    synthetic.write_published(published, synthetic.curves(["tdmpc2"], ["cartpole-balance", "walker-walk"], points=3))
    (published / "tdmpc2" / "walker-walk.csv").write_text("step,reward\nnot,a,csv\n")
    out = tmp_path / "out"
    args = ["analyze", "--published", str(published), "--out", str(out), "--reps", "50", "--no-per-task"]
    assert main([*args, "--strict"]) == 1
    err = capsys.readouterr().err
    assert "error: 1 problem(s)" in err and str(out / "tables" / "problems.csv") in err and "Traceback" not in err
    assert main(args) == 0
    assert "warning: 1 problem(s)" in capsys.readouterr().err


def test_cli_analyze_missing_input_is_one_clear_error(tmp_path, capsys):
    missing = tmp_path / "nowhere"
    assert main(["analyze", "--published", str(missing), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "does not exist" in err and "Traceback" not in err


@pytest.mark.parametrize("where", ["out", "parent"])
def test_cli_analyze_out_naming_a_file_is_one_clear_error(tmp_path, capsys, where):
    published = tmp_path / "published"
    synthetic.write_published(published, synthetic.curves(["tdmpc2"], ["cartpole-balance"], points=3))
    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a folder")
    out = a_file if where == "out" else a_file / "analysis"
    assert main(["analyze", "--published", str(published), "--out", str(out), "--reps", "50"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{str(a_file)!r} is a file, not a folder" in err and "Traceback" not in err
    assert a_file.read_text() == "not a folder"


# ------------------------------------------------------------------------------------------------------ figures

def _values(grid):
    from analysis.load import values_at

    evals = grid.assign(domain=grid["task"].map(lambda t: TASKS[t].domain),
                        budget=grid["task"].map(lambda t: TASKS[t].budget))
    return evals, values_at(evals)[0]


def test_each_figure_function_draws(grid, tmp_path):
    from analysis import stats
    from analysis.load import align

    evals, values = _values(grid)
    aligned, _ = align(evals)
    intervals = stats.interval_estimates(values, reps=REPS)
    figures = {
        "aggregate": F.aggregate_curves(stats.sample_efficiency_curves(aligned, reps=REPS)),
        "intervals": F.interval_plot(intervals),
        "profiles": F.performance_profile_plot(stats.performance_profiles(values, reps=REPS)),
        "poi": F.probability_of_improvement_plot(stats.probability_of_improvement(values, "mbdpo", reps=REPS)),
        "per_task": F.per_task_curves(aligned),
        "o2o": F.o2o_curves(aligned, {"from scratch": "sac", "fine-tuned": "mbdpo"}),
    }
    for name, fig in figures.items():
        assert isinstance(fig, Figure) and fig.axes, name
        assert _is_png(F.save(fig, tmp_path / f"{name}.png")), name
    n_domains = evals["domain"].nunique()
    assert len([ax for ax in figures["aggregate"].axes if ax.get_visible()]) == n_domains
    assert len([ax for ax in figures["per_task"].axes if ax.get_visible()]) == len(TASKS_USED)
    # one line per algorithm in every aggregate panel, with the paper's display names in the legend
    assert len(figures["aggregate"].axes[0].lines) == 3
    assert {t.get_text() for t in figures["aggregate"].legends[0].get_texts()} == {"MBDPO", "TD-MPC2", "SAC"}


def test_diagnostics_figure_and_missing_columns(grid, tmp_path):
    synthetic.write_runs(tmp_path / "runs", grid[grid["task"] == "cartpole-balance"])
    from analysis.load import load_runs

    train = load_runs(tmp_path / "runs").train
    fig = F.diagnostics_curves(train, columns=("cross_td_error", "behaviour_drift", "no_such_metric"))
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 3 and len(axes[0].lines) == 3
    assert any("no 'no_such_metric'" in t.get_text() for t in axes[2].texts)
    assert "no training logs" in F.diagnostics_curves(train.iloc[0:0]).axes[0].texts[0].get_text()


def test_ablation_scaling_inputs_from_runs(tmp_path):
    from analysis.load import load_runs, values_at

    # run configs list every hyper-parameter, as the trainer writes them
    default = {"model_size": "1.7M", "diffusion_steps": 20, "eta": 0.01}
    base = synthetic.curves(["mbdpo"], ["cartpole-balance", "walker-walk"], seeds=(1, 2), points=3)
    synthetic.write_runs(tmp_path / "runs", base, agent=default)  # the main grid's runs at the defaults
    for t in (5, 10):
        synthetic.write_runs(tmp_path / "runs", base, agent={**default, "diffusion_steps": t},
                             name_of={"mbdpo": f"mbdpo-T{t}"})
    # a main-grid run on a task outside the sweep must not weigh on the default bar
    synthetic.write_runs(tmp_path / "runs", synthetic.curves(["mbdpo"], ["cheetah-run"], seeds=(1,), points=3),
                         agent=default)
    for size in ("6M", "21M"):  # a model-size sweep: must not leak into the T = 20 bar
        synthetic.write_runs(tmp_path / "runs", base, agent={**default, "model_size": size},
                             name_of={"mbdpo": f"mbdpo-{size}"})
    data = load_runs(tmp_path / "runs")
    # holes are judged in each name's own task × seed grid: only the main grid's cheetah-run lacks seed 2
    assert list(data.problems[["kind", "algorithm", "task", "seed"]].itertuples(index=False, name=None)) == \
        [("missing", "mbdpo", "cheetah-run", 2)]
    values, _ = values_at(data.evals)
    ablation = ablation_values(values, data.runs, "agent.diffusion_steps")
    assert sorted(ablation["agent.diffusion_steps"].unique()) == [5, 10, 20]
    assert set(ablation["task"]) == {"cartpole-balance", "walker-walk"} and len(ablation) == 3 * 2 * 2
    assert set(ablation["algorithm"]) == {"mbdpo", "mbdpo-T5", "mbdpo-T10"}
    fig = F.ablation_plot(ablation, "agent.diffusion_steps", "diffusion steps T", reference={"TD-MPC2": 50.0})
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["5", "10", "20"]
    with pytest.raises(ValueError, match="agent.nope"):
        F.ablation_plot(ablation, "agent.nope")
    scaling = scaling_values(values, data.runs)  # online runs: a single-task model-size sweep
    assert sorted(scaling["params"].unique()) == [1.7e6, 6e6, 21e6] and set(scaling["task_set"]) == {"single-task"}
    assert len(scaling) == 3 * 2 * 2 + 1  # T variants left out; the default cheetah-run run is a 1.7M point
    multi = scaling.assign(task_set=np.where(np.arange(len(scaling)) % 2, 30, 80))
    table = T.scaling_table(multi)
    assert list(table.columns) == ["algorithm", "params", "30 tasks", "80 tasks", "80/30"]
    assert table["80/30"].to_numpy() == pytest.approx((table["80 tasks"] / table["30 tasks"]).to_numpy())
    assert isinstance(F.scaling_plot(scaling), Figure)


def test_o2o_unknown_algorithm_is_named(grid):
    evals, _ = _values(grid)
    with pytest.raises(ValueError, match="mbdpo-o2o"):
        F.o2o_curves(evals, {"fine-tuned": "mbdpo-o2o"})


def test_empty_inputs_give_a_figure_that_says_so():
    empty = pd.DataFrame(columns=["algorithm", "domain", "step", "value", "low", "high", "n_tasks"])
    fig = F.aggregate_curves(empty)
    assert "no aggregate curves" in fig.axes[0].texts[0].get_text()
    assert "no scaling runs" in F.scaling_plot(pd.DataFrame(columns=["algorithm", "params", "task_set",
                                                                     "score"])).axes[0].texts[0].get_text()


# ------------------------------------------------------------------------------------------------------- tables

def test_paper_table_markdown_and_latex():
    per_domain = pd.DataFrame({
        "algorithm": ["mbdpo", "tdmpc2", "mbdpo"], "domain": ["DMControl", "DMControl", "MetaWorld"],
        "n_tasks": [39, 38, 50], "step": [4_000_000] * 3, "mean": [88.81, 87.8, 98.1], "mean_low": [88.3, 87.2, 97.3],
        "mean_high": [89.4, 88.4, 98.9]})
    paper = T.paper_domain_table(per_domain)
    assert list(paper.columns) == ["Domain", "#", "MBDPO", "TD-MPC2"]
    assert paper.loc[0, "MBDPO"] == "88.8 [88.3, 89.4]" and paper.loc[0, "TD-MPC2"].endswith("(38 tasks)")
    assert paper.loc[1, "TD-MPC2"] == "–"
    md = T.to_markdown(paper).splitlines()
    assert md[0] == "| Domain | # | MBDPO | TD-MPC2 |" and len(md) == 2 + len(paper)
    tex = T.to_latex(pd.DataFrame({"a_b": ["x&y"], "v": [1.234]}), caption="50% of runs", label="tab:x")
    assert r"a\_b" in tex and r"x\&y" in tex and "1.2" in tex and r"50\% of runs" in tex
    assert tex.count(r"\toprule") == 1 and r"\label{tab:x}" in tex


def test_training_time_table_by_hand():
    runs = pd.DataFrame({"algorithm": ["a", "a", "b"], "task": ["cartpole-balance", "walker-walk", "mw-assembly"],
                         "seed": [1, 1, 1], "wall_time_s": [10.0, 30.0, 5.0], "env_steps_done": [1000, 1000, 500]})
    train = pd.DataFrame({"algorithm": ["a", "a", "a", "b"], "domain": ["DMControl"] * 3 + ["MetaWorld"],
                          "task": ["cartpole-balance", "cartpole-balance", "walker-walk", "mw-assembly"],
                          "seed": [1, 1, 1, 1], "update_ms": [2.0, 4.0, 9.0, 1.0], "act_ms": [1.0, 1.0, 1.0, 3.0]})
    table = T.training_time_table(runs, train).set_index(["algorithm", "domain"])
    assert table.loc[("a", "DMControl"), "ms_per_env_step"] == pytest.approx((10 + 30) / 2)  # 10 and 30 ms/step
    assert table.loc[("a", "DMControl"), "update_ms"] == pytest.approx((3.0 + 9.0) / 2)  # mean of per-run means
    assert table.loc[("b", "MetaWorld"), "ms_per_env_step"] == pytest.approx(10.0)
    assert table.loc[("a", "DMControl"), "runs"] == 2


# ---------------------------------------------------------------------------------------------------- embedding

def test_task_embedding_from_checkpoint(tmp_path):
    tasks = ["walker-walk", "cheetah-run", "cartpole-balance", "mw-assembly", "mw-reach", "mw-push", "hopper-hop"]
    rng = torch.Generator().manual_seed(0)
    weight = torch.cat([torch.randn(3, 8, generator=rng) + 5, torch.randn(3, 8, generator=rng) - 5,
                        torch.randn(1, 8, generator=rng) * 20])
    path = tmp_path / "step_0000000001.pt"
    torch.save({"agent": {"model": {"_encoder.0.weight": torch.zeros(2, 2), "task_emb.weight": weight}}}, path)
    loaded = load_task_embedding(path)
    assert loaded.shape == (7, 8) and np.allclose(loaded, weight.numpy())
    emb = tsne_embedding(loaded, tasks, seed=0)
    assert list(emb.columns) == ["task", "domain", "x", "y"] and len(emb) == 7
    assert dict(zip(emb["task"], emb["domain"]))["mw-push"] == "MetaWorld"
    fig = F.task_embedding_figure(emb, highlight=["hopper-hop"])
    assert any(t.get_text() == "hopper-hop" for t in fig.axes[0].texts)
    with pytest.raises(ValueError, match="must match"):
        tsne_embedding(loaded, tasks[:3])
    with pytest.raises(ValueError, match="single-task"):
        find_task_embedding({"model": {"_encoder.0.weight": torch.zeros(2, 2)}})
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        load_task_embedding(tmp_path / "nope.pt")


def test_colours_are_fixed_per_algorithm():
    alone = F.colors(["sac"])["sac"]
    together = F.colors(["mbdpo", "tdmpc2", "sac", "sac (published)", "mbdpo-T5"])
    assert together["sac"] == alone and together["mbdpo"] != together["tdmpc2"]
    assert together["sac (published)"] != alone and all(p >= c for p, c in zip(together["sac (published)"], alone))
    assert F.colors(["mbdpo-T5"])["mbdpo-T5"] == together["mbdpo-T5"]


def test_compare_to_published_by_hand():
    from analysis.validate import compare_to_published

    def evals(algorithm, scores_by_seed):
        rows = [{"algorithm": algorithm, "task": "cartpole-balance", "seed": seed, "step": step, "score": score,
                 "domain": "DMControl", "budget": 4_000_000}
                for seed, curve in scores_by_seed.items() for step, score in curve]
        return pd.DataFrame(rows)

    ours = evals("sac", {1: [(0, 10.0), (100_000, 60.0)], 2: [(0, 12.0), (100_000, 70.0)]})
    theirs = evals("sac", {1: [(0, 5.0), (100_000, 80.0)], 2: [(0, 5.0), (50_000, 50.0), (90_000, 90.0)],
                           3: [(0, 5.0), (100_000, 74.0)]})
    table = compare_to_published(ours, theirs, [100_000], margin=10.0)
    (row,) = table.to_dict("records")
    assert row["ours_mean"] == 65.0 and row["ours_runs"] == 2
    assert row["published_min"] == 74.0 and row["published_max"] == 90.0 and row["published_runs"] == 3
    assert row["published_mean"] == pytest.approx((80 + 90 + 74) / 3)
    assert row["passed"] is True  # 65 >= 74 - 10
    assert compare_to_published(ours, theirs, [100_000], margin=5.0)["passed"].tolist() == [False]
    assert compare_to_published(ours, theirs.assign(algorithm="tdmpc2"), [100_000]).empty
