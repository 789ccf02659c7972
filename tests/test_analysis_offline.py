"""Offline multi-task runs in the analysis (issues 15, 16): a format-3 run folder is read as an offline run (its
dataset folder is not a task, its steps are gradient updates), never mixed with the online env-step table, and
`analyze` writes the offline curves and fig. 6 (scaling) with the numbers a hand computation gives.

The synthetic run folders are written by the trainer's own writers (``OfflineTrainer.write_run_info``,
``dump_yaml`` of a real ``RunConfig``, ``OFFLINE_EVAL_COLUMNS``), so a change of the run format breaks these
tests rather than leaving the analysis reading an imagined layout."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from algorithms.common.config import OfflineConfig, RunConfig, dump_yaml
from algorithms.common.memory import MemoryEstimate
from algorithms.common.offline_loop import OfflineTrainer
from algorithms.common.runfiles import OFFLINE_EVAL_COLUMNS
from algorithms.registry import get_algorithm
from analysis import offline as O
from analysis import report, synthetic
from analysis.load import PRESET_PARAMETERS, is_offline_run, load_runs, offline_family
from analysis.report import analyze
from tests.test_analysis_figures import check_readable

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")
TASKS = ["cartpole-balance", "walker-walk", "mw-assembly"]  # two return tasks and one success task
ALGOS = ["mbdpo", "tdmpc2"]
SIZES = ["1.7M", "6M"]
SEEDS = [1, 2]
STEPS = [0, 50, 100]
DATASET = "mt3"
REPS = 200


def score_of(algo: str, size: str, task: str, seed: int, step: int) -> float:
    """A distinct, known normalised score per cell, so that a table entry can be checked by hand."""
    base = {"mbdpo": 40.0, "tdmpc2": 30.0}[algo] + {"1.7M": 0.0, "6M": 15.0, "21M": 25.0}[size]
    return base + 5.0 * TASKS.index(task) + 2.0 * seed + 0.2 * step


def write_offline_run(results: Path, algo: str, size: str, seed: int, status: str = "finished",
                      steps: list[int] = STEPS, tasks: list[str] = TASKS) -> Path:
    """One offline run folder in the layout of algorithms/common/offline_loop.py (format 3)."""
    name = f"{algo}-offline-{size}"
    run_dir = results / "runs" / name / DATASET / str(seed)
    run_dir.mkdir(parents=True)
    cfg = RunConfig(algo=algo, seed=seed, steps=steps[-1], name=name, eval_episodes=2,
                    offline=OfflineConfig(dataset=str(results / "data" / DATASET)))
    cfg.agent = get_algorithm(algo).load().Config(model_size=size)
    (run_dir / "config.yaml").write_text(dump_yaml(cfg))
    trainer = SimpleNamespace(run_info={}, cfg=cfg, run_dir=run_dir, tasks=tasks, counters={"updates": steps[-1]},
                              total=steps[-1], dataset_path=results / "data" / DATASET, dataset_digest="0" * 64,
                              wall_time=12.5, device="cpu",
                              memory=MemoryEstimate(parameters=10, trainable=8, weights=40, gradients=32, optimiser=64,
                                                    activations=100, replay=0, dataset_mapped=0))
    trainer.run_identity = lambda: OfflineTrainer.run_identity(trainer)
    OfflineTrainer.write_run_info(trainer, status)
    rows = []
    for step in steps:
        for task in tasks:
            score = score_of(algo, size, task, seed, step)
            success = score / 100.0 if task.startswith("mw-") else np.nan
            ret = 0.0 if task.startswith("mw-") else score * 10.0
            rows.append({"step": step, "task": task, "episode_return": ret, "episode_return_std": 1.0,
                         "episode_return_min": ret - 1, "episode_return_max": ret + 1, "success": success,
                         "episode_length": 1000, "episodes": 2})
    pd.DataFrame(rows, columns=list(OFFLINE_EVAL_COLUMNS)).to_csv(run_dir / "eval.csv", index=False)
    return run_dir


@pytest.fixture
def results(tmp_path) -> Path:
    """2 algorithms × 2 model sizes × 2 seeds × 3 tasks of offline runs, and online runs beside them."""
    for algo in ALGOS:
        for size in SIZES:
            for seed in SEEDS:
                write_offline_run(tmp_path, algo, size, seed)
    table = synthetic.curves(["mbdpo"], ["cartpole-balance"], seeds=(1, 2), points=4, seed=3)
    synthetic.write_runs(tmp_path / "runs", table)
    return tmp_path


def test_format_3_run_json_is_recognised(results):
    info = json.loads((results / "runs" / "mbdpo-offline-6M" / DATASET / "1" / "run.json").read_text())
    assert info["format_version"] == 3 and info["step_unit"] == "update"
    assert is_offline_run(info)
    assert is_offline_run({"format_version": 3, "tasks": TASKS})  # written before a step unit was known
    online = json.loads(next((results / "runs" / "mbdpo").glob("*/*/run.json")).read_text())
    assert not is_offline_run(online)
    assert offline_family("mbdpo-offline-1.7M", "mbdpo", "1.7M") == "mbdpo"
    assert offline_family("mbdpo-offline", "mbdpo", "6M") == "mbdpo"
    assert offline_family("wide-6M", "mbdpo", "6M") == "wide"  # a variant stays apart from the default


def test_offline_runs_are_read_apart_from_online_ones(results):
    data = load_runs(results / "runs")
    assert "unknown_task" not in set(data.problems["kind"]), data.problems
    assert not (data.problems["kind"].isin(["corrupt", "missing", "incomplete"])).any(), data.problems
    off = data.offline
    assert len(off) == len(ALGOS) * len(SIZES) * len(SEEDS) * len(TASKS) * len(STEPS)
    assert set(off["task"]) == set(TASKS) and set(off["dataset"]) == {DATASET}
    assert set(off["algorithm"]) == set(ALGOS) and set(off["model_size"]) == set(SIZES)
    assert set(off["step_unit"]) == {"update"}
    from analysis.load import MBDPO_PRESET_PARAMETERS

    params = off.groupby("algorithm")["params"].agg(set).to_dict()
    assert params["tdmpc2"] == {PRESET_PARAMETERS["1.7M"], PRESET_PARAMETERS["6M"]}
    assert params["mbdpo"] == {MBDPO_PRESET_PARAMETERS["1.7M"], MBDPO_PRESET_PARAMETERS["6M"]}
    row = off[(off["algorithm"] == "tdmpc2") & (off["model_size"] == "6M") & (off["task"] == "mw-assembly")
              & (off["seed"] == 2) & (off["step"] == 100)]
    assert len(row) == 1
    assert row["score"].iloc[0] == pytest.approx(score_of("tdmpc2", "6M", "mw-assembly", 2, 100))
    assert row["domain"].iloc[0] == "MetaWorld"
    walker = off[(off["task"] == "walker-walk") & (off["algorithm"] == "mbdpo") & (off["model_size"] == "1.7M")
                 & (off["seed"] == 1) & (off["step"] == 50)]
    assert walker["score"].iloc[0] == pytest.approx(score_of("mbdpo", "1.7M", "walker-walk", 1, 50))
    # the online table has the online run only, in env steps, as before
    assert set(data.evals["algorithm"]) == {"mbdpo"} and set(data.evals["task"]) == {"cartpole-balance"}
    assert set(data.evals["step_unit"]) == {"env"}
    assert not data.evals["path"].str.contains("-offline-").any()
    assert len(data.offline_runs) == len(ALGOS) * len(SIZES) * len(SEEDS)
    assert (data + data).offline.shape[0] == 2 * len(off)


def test_scaling_table_equals_a_hand_computation(results):
    data = load_runs(results / "runs")
    scores = O.final_scores(data.offline)
    assert set(scores["step"]) == {100} and len(scores) == len(ALGOS) * len(SIZES) * len(SEEDS) * len(TASKS)
    table = O.scaling_table(scores, reps=REPS)
    assert list(table.loc[table["algorithm"] == "mbdpo", "model_size"]) == ["1.7M", "6M"]
    cell = table[(table["algorithm"] == "mbdpo") & (table["model_size"] == "6M")].iloc[0]
    hand = np.mean([score_of("mbdpo", "6M", t, s, 100) for t in TASKS for s in SEEDS])
    assert hand == pytest.approx(55.0 + 5.0 + 3.0 + 20.0)  # base + mean task offset + mean seed term + 0.2·100
    assert cell["mean"] == pytest.approx(hand)
    assert cell["low"] < cell["mean"] < cell["high"]
    # the CI resamples tasks: the task spread (10 points) must show in its width, the seed spread alone is 2
    assert cell["high"] - cell["low"] > 4.0
    from analysis.load import MBDPO_PRESET_PARAMETERS

    assert cell["params"] == MBDPO_PRESET_PARAMETERS["6M"] and cell["n_tasks"] == 3 and cell["n_seeds"] == 2
    curves = O.offline_curves(data.offline, reps=REPS)
    point = curves[(curves["algorithm"] == "tdmpc2") & (curves["model_size"] == "1.7M") & (curves["step"] == 50)]
    assert point["value"].iloc[0] == pytest.approx(np.mean([score_of("tdmpc2", "1.7M", t, s, 50)
                                                            for t in TASKS for s in SEEDS]))


def analysed(results: Path, monkeypatch, **options) -> tuple[report.AnalysisResult, dict[str, object]]:
    figures = {}
    save = report.F.save

    def keep(fig, path, *args, **kwargs):
        figures[Path(path).name] = fig
        return save(fig, path, *args, **kwargs)

    monkeypatch.setattr(report.F, "save", keep)
    return analyze(results / "out", runs=results / "runs", reps=REPS, per_task=False, **options), figures


def test_analyze_writes_offline_tables_figures_and_summary(results, monkeypatch):
    result, figures = analysed(results, monkeypatch)
    out = results / "out"
    for name in ("tables/offline_scores.csv", "tables/offline_curves.csv", "tables/scaling.csv",
                 "figures/offline_curves.png", "figures/scaling.png"):
        assert (out / name).is_file(), name
    scaling = pd.read_csv(out / "tables" / "scaling.csv")
    cell = scaling[(scaling["algorithm"] == "tdmpc2") & (scaling["model_size"] == "1.7M")].iloc[0]
    assert cell["mean"] == pytest.approx(np.mean([score_of("tdmpc2", "1.7M", t, s, 100) for t in TASKS
                                                  for s in SEEDS]))
    scores = pd.read_csv(out / "tables" / "offline_scores.csv")
    assert len(scores) == 24 and set(scores["step"]) == {100}
    # the online part is unchanged: one algorithm on one task, no offline label in its tables
    per_domain = pd.read_csv(out / "tables" / "per_domain.csv")
    assert set(per_domain["algorithm"]) == {"mbdpo"}
    summary = (out / "summary.md").read_text()
    assert "## Offline runs" in summary and "figures/scaling.png" in summary
    for name in ("offline_curves.png", "scaling.png"):
        check_readable(name, figures[name])
    scaling_fig = figures["scaling.png"]
    ax = [a for a in scaling_fig.axes if a.has_data()][0]
    assert ax.get_xscale() == "log"
    assert "parameters" in ax.get_xlabel()
    assert {t.get_text() for t in scaling_fig.legends[0].get_texts()} == {"MBDPO", "TD-MPC2"}
    curves_fig = figures["offline_curves.png"]
    assert all("updates" in a.get_xlabel() for a in curves_fig.axes if a.has_data())
    assert len([a for a in curves_fig.axes if a.has_data()]) == 2  # (mt3, mbdpo), (mt3, tdmpc2)


def test_one_model_size_writes_no_scaling_figure_and_says_so(tmp_path, monkeypatch):
    for seed in SEEDS:
        write_offline_run(tmp_path, "mbdpo", "6M", seed)
    result, figures = analysed(tmp_path, monkeypatch)  # offline runs only: no online table
    out = tmp_path / "out"
    assert (out / "tables" / "scaling.csv").is_file() and (out / "figures" / "offline_curves.png").is_file()
    assert not (out / "figures" / "scaling.png").exists()
    summary = (out / "summary.md").read_text()
    assert "No scaling figure" in summary and "6M" in summary
    assert "No online (env-step) evaluations" in summary
    assert result.per_domain.empty


def test_corrupt_unfinished_and_stray_offline_files_are_problems(results):
    bad = results / "runs" / "mbdpo-offline-6M" / DATASET / "2" / "eval.csv"
    bad.write_text("step,task,episode_return,success\n0,cartpole-balance,not-a-number,\n")
    stray = write_offline_run(results, "tdmpc2", "21M", 1, status="running", steps=[0, 50])
    ev = pd.read_csv(stray / "eval.csv")
    extra = ev.iloc[[0]].assign(task="cheetah-run")
    inf = ev.iloc[[1]].assign(episode_return=np.inf)
    pd.concat([ev.iloc[2:], extra, inf]).to_csv(stray / "eval.csv", index=False)
    data = load_runs(results / "runs")
    problems = data.problems
    corrupt = problems[problems["kind"] == "corrupt"]
    assert len(corrupt) == 1 and corrupt["path"].iloc[0] == str(bad)
    assert "not-a-number" in corrupt["message"].iloc[0] or "could not convert" in corrupt["message"].iloc[0]
    unknown = problems[problems["kind"] == "unknown_task"]
    assert list(unknown["task"]) == ["cheetah-run"] and "not one of run.json's tasks" in unknown["message"].iloc[0]
    assert len(problems[(problems["kind"] == "incomplete") & (problems["path"] == str(stray))]) == 1
    non_finite = problems[problems["kind"] == "non_finite"]
    assert len(non_finite) == 1 and non_finite["path"].iloc[0] == str(stray / "eval.csv")
    off = data.offline
    assert not ((off["model_size"] == "6M") & (off["algorithm"] == "mbdpo") & (off["seed"] == 2)).any()
    assert "cheetah-run" not in set(off["task"]) and np.isfinite(off["return"]).all()
    assert "unknown_task" not in set(problems.loc[problems["task"] == DATASET, "kind"])


def test_presets_of_the_analysis_are_the_world_models():
    from algorithms.world_model import PRESETS

    assert list(PRESET_PARAMETERS) == list(PRESETS)
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for size, count in PRESET_PARAMETERS.items():
        assert f"| {size} |" in readme and f"{count:,} |" in readme, size
    from analysis.load import MBDPO_PRESET_PARAMETERS

    for size, count in MBDPO_PRESET_PARAMETERS.items():
        assert f"{count:,} |" in readme, size


def test_mbdpo_preset_parameters_are_counted_from_the_model():
    import gymnasium as gym

    from algorithms.common.memory import estimate_memory
    from algorithms.common.configure import build_config
    from algorithms.registry import get_algorithm
    from analysis.load import MBDPO_PRESET_PARAMETERS
    from envs.registry import get_task

    algorithm, spec = get_algorithm("mbdpo").load(), get_task("cartpole-balance", "state")
    for size, count in MBDPO_PRESET_PARAMETERS.items():
        cfg = build_config("mbdpo", None, {"agent.model_size": size})
        estimate = estimate_memory(lambda d: algorithm.Agent(
            cfg.agent, spec, gym.spaces.Box(-np.inf, np.inf, (39,), np.float32), gym.spaces.Box(-1, 1, (6,), np.float32),
            d, num_tasks=80, task_id=0, action_dims=[6] * 80, discounts=[0.99] * 80), 1, cfg.agent.horizon)
        assert estimate.trainable == count, size


def test_cli_analyze_reads_offline_runs_alone(tmp_path, capsys):
    """`mbdpo-bench analyze --runs` on a folder of offline runs only: the offline outputs, exit 0; an unfinished
    offline run is a serious problem under --strict (exit 1), as an unfinished online run is."""
    from algorithms.cli import main

    for size in SIZES:
        write_offline_run(tmp_path, "mbdpo", size, 1)
    out = tmp_path / "out"
    assert main(["analyze", "--runs", str(tmp_path / "runs"), "--out", str(out), "--reps", "50",
                 "--no-per-task"]) == 0
    assert (out / "figures" / "scaling.png").is_file() and (out / "tables" / "offline_curves.csv").is_file()
    write_offline_run(tmp_path, "tdmpc2", "6M", 1, status="running", steps=[0, 50])
    assert main(["analyze", "--runs", str(tmp_path / "runs"), "--out", str(out), "--reps", "50",
                 "--no-per-task", "--strict"]) == 1
    assert "incomplete" in capsys.readouterr().out + (out / "summary.md").read_text()
