"""``analyze`` on what a user points it at (issue 18): runs in progress, a single run folder or any folder above it,
and folders that hold no runs — an answer for each, never a traceback."""

from __future__ import annotations

import pandas as pd
import pytest

from algorithms.cli import main
from analysis.load import find_run_dirs, load_runs
from analysis.report import analyze
from tests.test_analysis_data import EVAL_HEADER, TRAIN_HEADER, write_csv, write_run

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")
REPS = 50


@pytest.fixture
def in_progress(tmp_path):
    """results/runs with two runs that have only their step-0 evaluation, and one that has none yet."""
    runs = tmp_path / "results" / "runs"
    write_run(runs, "mbdpo", "cartpole-balance", 1, [(0, 10.0, None)], status="running", total_env_steps=4000,
              train=[(0, 0, 1.0, 1.0, 1e5, 3.0)])
    write_run(runs, "sac", "cartpole-balance", 1, [(0, 30.0, None)], status="running", total_env_steps=4000)
    empty = write_run(runs, "tdmpc2", "cartpole-balance", 1, None, status="running", total_env_steps=4000)
    write_csv(empty / "eval.csv", EVAL_HEADER, [])
    write_csv(empty / "train.csv", TRAIN_HEADER, [])
    return tmp_path


def test_step_zero_only_runs_give_tables_that_say_they_are_not_final(in_progress):
    result = analyze(in_progress / "out", runs=in_progress / "results" / "runs", reps=REPS)
    table = pd.read_csv(result.out / "tables" / "per_domain.csv")
    dmc = table[table["domain"] == "DMControl"].set_index("algorithm")
    assert set(dmc.index) == {"mbdpo", "sac"}
    assert (dmc["step"] == 0).all()  # the last step every run reached, not the 4,000-step budget
    assert dmc.loc["sac", "mean"] == pytest.approx(3.0)  # return 30 of 1000 → score 3
    kinds = result.problems.groupby("kind").size().to_dict()
    assert kinds["early_step"] == 1 and kinds["incomplete"] == 3
    early = result.problems[result.problems["kind"] == "early_step"]["message"].iloc[0]
    assert "4,000" in early and "env step 0" in early
    empty = result.problems[(result.problems["algorithm"] == "tdmpc2")]["message"].iloc[0]
    assert "no evaluation yet" in empty
    summary = (result.out / "summary.md").read_text()
    head = summary.split("## Step units")[0]
    assert "Not final" in head and "3 run(s) have not finished" in head
    for name in ("aggregate_curves", "interval_estimates", "performance_profiles", "diagnostics",
                 "per_task_dmcontrol"):
        assert (result.out / "figures" / f"{name}.png").stat().st_size > 0, name
    dropped = pd.read_csv(result.out / "tables" / "alignment_dropped.csv")
    assert dropped["n"].sum() < 100  # a single evaluation does not make a grid of one-step spacing


@pytest.mark.parametrize("where", ["results", "results/runs", "results/runs/sac", "results/runs/sac/cartpole-balance",
                                   "results/runs/sac/cartpole-balance/1"])
def test_any_folder_from_the_results_root_down_to_a_run_folder(in_progress, where, capsys):
    rc = main(["analyze", "--runs", str(in_progress / where), "--out", str(in_progress / "out"), "--reps", str(REPS)])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "Traceback" not in err
    table = pd.read_csv(in_progress / "out" / "tables" / "per_domain.csv")
    assert "sac" in set(table["algorithm"])
    expected = {"sac"} if "sac" in where else {"mbdpo", "sac"}
    assert set(table["algorithm"]) == expected
    assert "problem(s)" in err  # the unfinished runs are named on stderr, not only in problems.csv


def test_run_names_come_from_the_run_folder_not_the_folder_given(in_progress):
    run = in_progress / "results" / "runs" / "mbdpo" / "cartpole-balance" / "1"
    data = load_runs(run)
    assert list(data.runs["algorithm"]) == ["mbdpo"] and list(data.runs["task"]) == ["cartpole-balance"]
    assert list(data.evals["seed"]) == [1]
    assert find_run_dirs(in_progress) == []  # five levels above a run: too far to search
    assert len(find_run_dirs(in_progress / "results")) == 3


def _unrelated(tmp_path):
    folder = tmp_path / "notes"
    (folder / "a" / "b").mkdir(parents=True)
    (folder / "a" / "b" / "x.txt").write_text("not a run")
    (folder / "data.csv").write_text("step,value\n0,1\n")
    return folder


@pytest.mark.parametrize("case, message", [
    ("empty", "no run folders under"),
    ("unrelated", "no run folders under"),
    ("missing", "does not exist"),
    ("file", "is a file"),
    ("no_evals", "no evaluation yet"),
    ("corrupt", "cannot read run metadata"),
])
def test_folders_without_evaluations_say_what_they_lack(tmp_path, capsys, case, message):
    target = {"empty": tmp_path / "empty", "missing": tmp_path / "nope"}.get(case)
    if case == "empty":
        target.mkdir()
    elif case == "unrelated":
        target = _unrelated(tmp_path)
    elif case == "file":
        target = _unrelated(tmp_path) / "data.csv"
    elif case == "no_evals":
        target = write_run(tmp_path / "runs", "sac", "cartpole-balance", 1, None, status="running")
        write_csv(target / "eval.csv", EVAL_HEADER, [])
    elif case == "corrupt":
        target = write_run(tmp_path / "runs", "sac", "cartpole-balance", 1, [(0, 1.0, None)])
        (target / "run.json").write_text("{")
    rc = main(["analyze", "--runs", str(target), "--out", str(tmp_path / "out"), "--reps", str(REPS)])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("mbdpo-bench: error:") and message in err, err
    assert "Traceback" not in err
    if case in ("empty", "unrelated"):
        assert "results root" in err and "{name}/{task}/{seed}" in err  # says what it wants
