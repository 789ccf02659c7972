"""Tests of the analysis inputs and statistics (analysis/load.py, analysis/stats.py) on small hand-made fixtures.

Every fixture is written here under tmp_path (released-curve folders in the format of shared/reference/FORMAT.md,
run folders in the format of results/README.md) or built as a DataFrame; expected values are worked out by hand
in the comments. Bootstraps use a few hundred replicates so that the whole file runs in seconds.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from rliable import metrics as rl_metrics

from analysis import stats
from analysis.load import (
    EVAL_COLUMNS,
    PROBLEM_COLUMNS,
    AnalysisInputError,
    align,
    default_grid,
    load_published,
    load_runs,
    missing_steps,
    values_at,
)
from envs.registry import TASKS

REPS = 300  # bootstrap replicates in tests (the library default is 2000)
PIXEL_TASK = next(t for t in TASKS if t.endswith("-pixels"))  # a registered Visual RL entry
PIXEL_BASE = PIXEL_TASK[: -len("-pixels")]

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")  # arch warns about rliable's RandomState


# ------------------------------------------------------------------------------------------------ fixture writers

def write_csv(path: Path, header: list[str], rows: list[tuple]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [",".join(header)] + [",".join("" if v is None else str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_curve(root: Path, folder: str, stem: str, value_col: str, seeds: dict[int, list[tuple[int, float]]]) -> Path:
    """A released curve file ``root/folder/stem.csv`` with columns ``step,<value_col>,seed``."""
    rows = [(step, value, seed) for seed, points in seeds.items() for step, value in points]
    return write_csv(root / folder / f"{stem}.csv", ["step", value_col, "seed"], rows)


EVAL_HEADER = ["step", "episode_return", "episode_return_std", "episode_return_min", "episode_return_max", "success",
               "episode_length", "episodes"]
TRAIN_HEADER = ["step", "updates", "update_ms", "act_ms", "behaviour_drift", "cross_td_error"]


def write_run(root: Path, name: str, task: str, seed: int, evals: list[tuple] | None,
              status: str = "finished", config_hash: str = "c0ffee0011223344", total_env_steps: int = 2000,
              train: list[tuple] | None = None, agent: dict | None = None) -> Path:
    """A run folder ``root/name/task/seed`` as the trainer writes it; ``evals`` rows are (step, return, success)
    with success None for DMControl; ``evals=None`` writes no eval.csv."""
    run_dir = root / name / task / str(seed)
    run_dir.mkdir(parents=True)
    done = max((e[0] for e in evals or [] if isinstance(e[0], int)), default=0)
    (run_dir / "run.json").write_text(json.dumps({
        "format_version": 2, "status": status, "seed": seed, "algo": name, "name": name, "task": task,
        "config_hash": config_hash, "total_env_steps": total_env_steps, "env_steps_done": done,
        "wall_time_s": 12.5}))
    config = {"format_version": 2, "algo": name, "task": task, "seed": seed, "steps": total_env_steps,
              "agent": agent or {"lr": 0.0003, "hidden_dim": 64}}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    if evals is not None:
        write_csv(run_dir / "eval.csv", EVAL_HEADER,
                  [(step, ret, 1.0, ret - 1, ret + 1, success, 500, 2) for step, ret, success in evals])
    if train is not None:
        write_csv(run_dir / "train.csv", TRAIN_HEADER, train)
    return run_dir


def make_evals(runs: dict[tuple[str, str, int], list[tuple[int, float]]],
               budgets: dict[tuple[str, str, int], int] | None = None) -> pd.DataFrame:
    """A tidy evaluation table (EVAL_COLUMNS) of return-metric runs: {(algorithm, task, seed): [(step, return)]}.

    score = return / 10; budget from the registry unless ``budgets`` names one for the run.
    """
    rows = []
    for (alg, task, seed), points in runs.items():
        spec = TASKS[task]
        budget = (budgets or {}).get((alg, task, seed), spec.budget)
        for step, ret in points:
            rows.append({"source": "test", "algorithm": alg, "task": task, "suite": spec.suite,
                         "domain": spec.domain, "seed": seed, "step": step, "return": float(ret),
                         "success": np.nan, "score": ret / 10.0, "budget": budget, "config_hash": "", "path": ""})
    return pd.DataFrame(rows, columns=EVAL_COLUMNS)


def score_values(matrices: dict[str, np.ndarray], domain: str = "DMControl",
                 task_names: list[str] | None = None) -> pd.DataFrame:
    """One score per run (``algorithm, task, seed, domain, score``) from {algorithm: runs × tasks matrix}."""
    rows = []
    for alg, matrix in matrices.items():
        matrix = np.asarray(matrix, dtype=float)
        names = task_names or [f"task{j:02d}" for j in range(matrix.shape[1])]
        for j, task in enumerate(names):
            for i in range(matrix.shape[0]):
                rows.append({"algorithm": alg, "task": task, "seed": i + 1, "domain": domain,
                             "score": matrix[i, j]})
    return pd.DataFrame(rows)


def problem_keys(problems: pd.DataFrame, kind: str) -> set[tuple]:
    sel = problems[problems["kind"] == kind]
    return {(a, t, None if pd.isna(s) else int(s)) for a, t, s in zip(sel["algorithm"], sel["task"], sel["seed"])}


# ------------------------------------------------------------------------------------------- released curves

@pytest.fixture
def published(tmp_path):
    """A small released-results folder: returns (root, paths of the odd files)."""
    root = tmp_path / "published"
    # DMControl, returns 0-1000. mbdpo: regular and complete.
    write_curve(root, "mbdpo", "cartpole-balance", "reward", {
        1: [(0, 10), (100_000, 500), (200_000, 900)],
        2: [(0, 20), (100_000, 600), (200_000, 950)],
        3: [(0, 30), (100_000, 700), (200_000, 990)]})
    # tdmpc2: ragged. Seed 2 lacks step 0 and is irregularly spaced; seed 3 repeats step 100k (the last row, 350,
    # must be kept) and ends early at 200k.
    write_curve(root, "tdmpc2", "cartpole-balance", "reward", {
        1: [(0, 0), (100_000, 400), (200_000, 800), (300_000, 900)],
        2: [(50_000, 100), (170_000, 300), (300_000, 700)],
        3: [(0, 5), (100_000, 300), (100_000, 350), (200_000, 600)]})
    # MetaWorld in both scales, same underlying success 0, 0.25, 1.0: tdmpc2 writes 0-1 under `success`,
    # mbdpo writes success x 100 under `reward`. mbdpo lacks seed 3 here (it has seed 3 elsewhere): 'missing'.
    write_curve(root, "tdmpc2", "mw-assembly", "success",
                {s: [(0, 0.0), (100_000, 0.25), (200_000, 1.0)] for s in (1, 2, 3)})
    write_curve(root, "mbdpo", "mw-assembly", "reward",
                {s: [(0, 0), (100_000, 25), (200_000, 100)] for s in (1, 2)})
    # MyoSuite under its TD-MPC2-era name.
    write_curve(root, "tdmpc2", "myo-hand-reach", "success",
                {s: [(0, 0.0), (50_000, 0.5), (100_000, 0.75)] for s in (1, 2, 3)})
    # Visual RL: folder mbdpo-pixels holds mbdpo's pixel curves, named by the state task.
    write_curve(root, "mbdpo-pixels", PIXEL_BASE, "reward",
                {s: [(0, 40), (100_000, 200 + s)] for s in (1, 2, 3)})
    odd = {
        "unknown": write_curve(root, "mbdpo", "not-a-registered-task", "reward", {1: [(0, 1)]}),
        "garbage": write_csv(root / "tdmpc2" / "cup-catch.csv", ["this is not", "a curve"], [("at", "all")]),
        "empty": write_csv(root / "tdmpc2" / "finger-spin.csv", [], []),
        "non_numeric": write_curve(root, "mbdpo", "walker-walk", "reward", {1: [(0, "abc")]}),
    }
    return root, odd


def test_published_tables_have_documented_columns(published):
    root, _ = published
    rs = load_published(root)
    assert list(rs.evals.columns) == EVAL_COLUMNS
    assert list(rs.problems.columns) == PROBLEM_COLUMNS
    assert set(rs.evals["source"]) == {"published"}
    assert set(rs.evals["algorithm"]) == {"mbdpo", "tdmpc2"}


def test_published_dmc_return_and_score(published):
    root, _ = published
    ev = load_published(root).evals
    cp = ev[(ev["algorithm"] == "mbdpo") & (ev["task"] == "cartpole-balance")].sort_values(["seed", "step"])
    assert list(cp["return"]) == [10, 500, 900, 20, 600, 950, 30, 700, 990]
    np.testing.assert_allclose(cp["score"], cp["return"] / 10.0)
    assert cp["success"].isna().all()
    assert set(cp["suite"]) == {"dmcontrol"} and set(cp["domain"]) == {"DMControl"}
    assert set(cp["budget"]) == {TASKS["cartpole-balance"].budget}


def test_published_metaworld_both_scales_become_success_0_1(published):
    root, _ = published
    ev = load_published(root).evals
    mw = ev[ev["task"] == "mw-assembly"]
    for alg in ("mbdpo", "tdmpc2"):
        run = mw[(mw["algorithm"] == alg) & (mw["seed"] == 1)].sort_values("step")
        assert list(run["success"]) == [0.0, 0.25, 1.0], alg
        assert list(run["score"]) == [0.0, 25.0, 100.0], alg
        assert run["return"].isna().all(), alg
    assert set(mw["domain"]) == {"MetaWorld"}
    assert mw["success"].between(0, 1).all()


def test_published_myosuite_alias(published):
    root, _ = published
    ev = load_published(root).evals
    assert "myo-hand-reach" not in set(ev["task"])
    myo = ev[ev["task"] == "myo-reach"]
    assert set(myo["algorithm"]) == {"tdmpc2"}
    assert set(myo["domain"]) == {"MyoSuite"}
    assert sorted(myo.loc[myo["seed"] == 2, "score"]) == [0.0, 50.0, 75.0]


def test_published_pixels_folder_is_visual_rl_of_its_algorithm(published):
    root, _ = published
    ev = load_published(root).evals
    assert "mbdpo-pixels" not in set(ev["algorithm"])
    px = ev[ev["task"] == PIXEL_TASK]
    assert set(px["algorithm"]) == {"mbdpo"}
    assert set(px["domain"]) == {"Visual RL"}
    assert set(px["budget"]) == {TASKS[PIXEL_TASK].budget}
    # mbdpo-pixels counts agent steps (FIDELITY.md D1): its step 100k is 200k env steps at action repeat 2
    final = px[px["source_step"] == 100_000].sort_values("seed")
    assert list(final["score"]) == [20.1, 20.2, 20.3]
    assert set(final["step"]) == {200_000} and set(final["step_unit"]) == {"agent"}
    # the state task of the same name is not created by the pixel folder
    assert PIXEL_BASE not in set(ev["task"])


def test_published_ragged_runs_are_kept_as_released(published):
    root, _ = published
    ev = load_published(root).evals
    cp = ev[(ev["algorithm"] == "tdmpc2") & (ev["task"] == "cartpole-balance")]
    steps = {s: sorted(g["step"]) for s, g in cp.groupby("seed")}
    assert steps == {1: [0, 100_000, 200_000, 300_000], 2: [50_000, 170_000, 300_000], 3: [0, 100_000, 200_000]}


def test_published_duplicate_step_keeps_last_row(published):
    root, _ = published
    rs = load_published(root)
    ev = rs.evals
    dup = ev[(ev["algorithm"] == "tdmpc2") & (ev["task"] == "cartpole-balance") & (ev["seed"] == 3)
             & (ev["step"] == 100_000)]
    assert list(dup["return"]) == [350]
    dups = rs.problems[rs.problems["kind"] == "duplicate_step"]
    assert problem_keys(rs.problems, "duplicate_step") == {("tdmpc2", "cartpole-balance", 3)}
    assert list(dups["path"]) == [str(root / "tdmpc2" / "cartpole-balance.csv")]


def test_published_unknown_task_is_reported_with_path(published):
    root, odd = published
    rs = load_published(root)
    unknown = rs.problems[rs.problems["kind"] == "unknown_task"]
    assert list(unknown["path"]) == [str(odd["unknown"])]
    assert "not-a-registered-task" not in set(rs.evals["task"])


def test_published_corrupt_files_are_reported_with_their_paths(published):
    root, odd = published
    rs = load_published(root)
    corrupt = rs.problems[rs.problems["kind"] == "corrupt"]
    assert sorted(corrupt["path"]) == sorted(str(odd[k]) for k in ("garbage", "empty", "non_numeric"))
    assert not {"cup-catch", "finger-spin", "walker-walk"} & set(rs.evals["task"])


def test_published_missing_seed_is_reported(published):
    root, _ = published
    rs = load_published(root)
    missing = problem_keys(rs.problems, "missing")
    assert ("mbdpo", "mw-assembly", 3) in missing
    # Among the (algorithm, task) pairs that were released, that is the only hole.
    released = set(rs.evals[["algorithm", "task"]].drop_duplicates().itertuples(index=False, name=None))
    assert {k for k in missing if k[:2] in released} == {("mbdpo", "mw-assembly", 3)}


def test_published_algorithm_filter(published):
    root, _ = published
    rs = load_published(root, algorithms=["tdmpc2"])
    assert set(rs.evals["algorithm"]) == {"tdmpc2"}
    with pytest.raises(AnalysisInputError, match="no-such-algo"):
        load_published(root, algorithms=["no-such-algo"])


def test_published_nonexistent_root(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(AnalysisInputError, match=str(missing)):
        load_published(missing)


# ------------------------------------------------------------------------------------------------- alignment

# cartpole-balance (DMControl), return r -> score r/10. Grid 0..500 every 100 (tolerance = spacing = 100).
#   seed 1: evals at   0, 150, 300        -> 0:0 100:0 200:150 300:300 400:300 | 500 is 200 > 100 past its end
#   seed 2: evals at 120, 220, 700        -> 0, 100 before its first eval | 200:120 300:220 400:220 500:220 |
#                                            700 lies after the grid's end (an inner gap is filled, not dropped)
ALIGN_RUNS = {("alg", "cartpole-balance", 1): [(0, 0), (150, 150), (300, 300)],
              ("alg", "cartpole-balance", 2): [(120, 120), (220, 220), (700, 700)]}
GRID = np.arange(0, 501, 100)


def test_align_nearest_previous_evaluation():
    aligned, _ = align(make_evals(ALIGN_RUNS), GRID)
    got = {s: list(zip(g["step"], g["eval_step"])) for s, g in aligned.groupby("seed")}
    assert got == {1: [(0, 0), (100, 0), (200, 150), (300, 300), (400, 300)],
                   2: [(200, 120), (300, 220), (400, 220), (500, 220)]}
    # the value is the one of the evaluation it came from
    np.testing.assert_allclose(aligned["score"], aligned["eval_step"] / 10.0)
    assert set(EVAL_COLUMNS) <= set(aligned.columns)


def test_align_reports_what_it_dropped():
    _, dropped = align(make_evals(ALIGN_RUNS), GRID)
    rows = {(int(r.seed), r.reason): (int(r.n), r.steps) for r in dropped.itertuples()}
    assert rows == {(1, "run ends at 300"): (1, "500"),
                    (2, "before first evaluation"): (2, "0-100"),
                    (2, "after the grid's end"): (1, "700")}


def test_align_tolerance_widens_the_end():
    aligned, dropped = align(make_evals(ALIGN_RUNS), GRID, tolerance=250)
    seed1 = aligned[aligned["seed"] == 1]
    assert list(seed1["step"]) == [0, 100, 200, 300, 400, 500]
    assert list(seed1["eval_step"])[-1] == 300
    assert not dropped["reason"].str.startswith("run ends").any()


def test_align_per_domain_grid():
    evals = make_evals({("alg", "cartpole-balance", 1): [(0, 100), (1000, 200)],
                        ("alg", "mw-assembly", 1): [(0, 0), (500, 0)]})
    aligned, _ = align(evals, {"DMControl": np.array([0, 1000]), "MetaWorld": np.array([0, 250, 500])})
    assert sorted(aligned.loc[aligned["domain"] == "DMControl", "step"]) == [0, 1000]
    assert sorted(aligned.loc[aligned["domain"] == "MetaWorld", "step"]) == [0, 250, 500]


def test_default_grid_uses_common_spacing_and_budget():
    # spacings 100,100,100 and one 50: mode 100; budget 300 for every run
    evals = make_evals({("alg", "cartpole-balance", 1): [(0, 1), (100, 2), (200, 3), (300, 4)],
                        ("alg", "cartpole-balance", 2): [(0, 1), (50, 2)]},
                       budgets={("alg", "cartpole-balance", 1): 300, ("alg", "cartpole-balance", 2): 300})
    grid = default_grid(evals)
    assert list(grid) == ["DMControl"]
    assert list(grid["DMControl"]) == [0, 100, 200, 300]


def test_values_at_int_step():
    values, dropped = values_at(make_evals(ALIGN_RUNS), 250)
    got = {int(r.seed): (int(r.step), int(r.eval_step), r.score) for r in values.itertuples()}
    assert got == {1: (250, 150, 15.0), 2: (250, 220, 22.0)}
    assert dropped.empty  # seed 2's evaluation at 700 lies after 250 but is not a loss at a single step


def test_values_at_none_takes_each_domains_most_common_budget():
    cp, mw = "cartpole-balance", "mw-assembly"
    runs = {("a", cp, 1): [(0, 0), (500, 500), (1000, 600)],
            ("a", cp, 2): [(0, 0), (500, 500), (1000, 700), (1500, 800), (2000, 900)],
            ("a", cp, 3): [(0, 0), (500, 500), (1000, 800)],
            ("a", mw, 1): [(0, 0), (250, 250), (500, 400)],
            ("a", mw, 2): [(0, 0), (100, 100)]}  # ends 400 past the MetaWorld end; typical spacing is 250
    budgets = {("a", cp, 1): 1000, ("a", cp, 2): 2000, ("a", cp, 3): 1000,
               ("a", mw, 1): 500, ("a", mw, 2): 500}
    values, dropped = values_at(make_evals(runs, budgets))
    got = {(r.task, int(r.seed)): (int(r.step), int(r.eval_step)) for r in values.itertuples()}
    assert got == {(cp, 1): (1000, 1000), (cp, 2): (1000, 1000), (cp, 3): (1000, 1000), (mw, 1): (500, 500)}
    cp_scores = values[values["task"] == cp].sort_values("seed")["score"]
    assert list(cp_scores) == [60.0, 70.0, 80.0]
    assert [(r.task, int(r.seed), r.reason) for r in dropped.itertuples()] == [(mw, 2, "run ends at 100")]


# ----------------------------------------------------------------------------------------------------- our runs

CP_EVALS = {1: [(0, 10.0, None), (1000, 400.0, None), (2000, 800.0, None)],
            2: [(0, 20.0, None), (1000, 500.0, None), (2000, 900.0, None)]}
MW_EVALS = {1: [(0, 0.0, 0.0), (1000, 0.0, 0.5), (2000, 0.0, 1.0)],
            2: [(0, 0.0, 0.0), (1000, 0.0, 0.0), (2000, 0.0, 0.5)]}
TRAIN_ROWS = [(500, 0, "", 0.2, "", ""), (1000, 500, 3.5, 0.2, 0.01, 0.4), (1500, 1000, 3.4, 0.2, 0.02, 0.3)]


@pytest.fixture
def runs_root(tmp_path):
    """Two complete seeds of sac on a DMControl and a MetaWorld task, one training log."""
    root = tmp_path / "runs"
    for seed in (1, 2):
        write_run(root, "sac", "cartpole-balance", seed, CP_EVALS[seed], train=TRAIN_ROWS if seed == 1 else None)
        write_run(root, "sac", "mw-assembly", seed, MW_EVALS[seed], agent={"lr": 0.001, "hidden_dim": 32})
    return root


def test_load_runs_clean_set_has_no_problems(runs_root):
    rs = load_runs(runs_root)
    assert rs.problems.empty
    assert list(rs.problems.columns) == PROBLEM_COLUMNS


def test_load_runs_tidy_evals_and_scores(runs_root):
    ev = load_runs(runs_root).evals
    assert list(ev.columns) == EVAL_COLUMNS
    assert len(ev) == 12 and set(ev["source"]) == {"ours"} and set(ev["algorithm"]) == {"sac"}
    cp = ev[ev["task"] == "cartpole-balance"].sort_values(["seed", "step"])
    assert list(cp["return"]) == [10, 400, 800, 20, 500, 900]
    np.testing.assert_allclose(cp["score"], cp["return"] / 10.0)
    assert cp["success"].isna().all() and set(cp["domain"]) == {"DMControl"}
    mw = ev[ev["task"] == "mw-assembly"].sort_values(["seed", "step"])
    assert list(mw["score"]) == [0.0, 50.0, 100.0, 0.0, 0.0, 50.0]
    assert set(mw["domain"]) == {"MetaWorld"} and set(mw["suite"]) == {"metaworld"}
    assert set(ev["budget"]) == {2000}  # total_env_steps of run.json
    assert set(ev["config_hash"]) == {"c0ffee0011223344"}
    assert ev["path"].map(lambda p: Path(p).name == "eval.csv").all()


def test_load_runs_metadata_with_flattened_config(runs_root):
    runs = load_runs(runs_root).runs
    assert len(runs) == 4
    for col in ("status", "config_hash", "wall_time_s", "agent.lr", "agent.hidden_dim"):
        assert col in runs.columns, col
    assert "agent" not in runs.columns
    lr = {(r["task"], r["seed"]): r["agent.lr"] for _, r in runs.iterrows()}
    assert lr == {("cartpole-balance", 1): 0.0003, ("cartpole-balance", 2): 0.0003,
                  ("mw-assembly", 1): 0.001, ("mw-assembly", 2): 0.001}
    assert set(runs["status"]) == {"finished"}


def test_load_runs_train_log(runs_root):
    rs = load_runs(runs_root)
    tr = rs.train
    assert len(tr) == len(TRAIN_ROWS)
    assert {"algorithm", "task", "seed", "domain"} <= set(tr.columns)
    assert set(zip(tr["algorithm"], tr["task"], tr["seed"], tr["domain"])) == {
        ("sac", "cartpole-balance", 1, "DMControl")}
    assert list(tr["step"]) == [500, 1000, 1500]
    assert tr["update_ms"].isna().sum() == 1  # the empty cell of the seed-step interval
    assert load_runs(runs_root, train_logs=False).train.empty


def test_load_runs_corrupt_eval_csv_is_reported(runs_root):
    run_dir = write_run(runs_root, "sac", "walker-walk", 1, None)
    (run_dir / "eval.csv").write_text("\x00\x01garbage without the columns\n<<<>>>\n")
    rs = load_runs(runs_root)
    corrupt = rs.problems[rs.problems["kind"] == "corrupt"]
    assert list(corrupt["path"]) == [str(run_dir / "eval.csv")]
    assert "walker-walk" not in set(rs.evals["task"])
    assert len(rs.evals) == 12  # the good runs are still read


def test_load_runs_eval_csv_with_non_numeric_values_is_reported(runs_root):
    run_dir = write_run(runs_root, "sac", "walker-walk", 1, [(0, 10.0, None), ("abc", 20.0, None)])
    rs = load_runs(runs_root)
    assert list(rs.problems.loc[rs.problems["kind"] == "corrupt", "path"]) == [str(run_dir / "eval.csv")]
    assert len(rs.evals) == 12


def test_load_runs_corrupt_metadata_is_reported(runs_root):
    bad_json = write_run(runs_root, "sac", "walker-walk", 1, CP_EVALS[1])
    (bad_json / "run.json").write_text("{not json")
    bad_yaml = write_run(runs_root, "sac", "walker-walk", 2, CP_EVALS[2])
    (bad_yaml / "config.yaml").write_text("agent: [unclosed\n")
    rs = load_runs(runs_root)
    corrupt = rs.problems[rs.problems["kind"] == "corrupt"]
    assert sorted(corrupt["path"]) == sorted([str(bad_json / "run.json"), str(bad_yaml / "config.yaml")])
    assert "walker-walk" not in set(rs.evals["task"])


def test_load_runs_run_without_eval_csv_is_missing(runs_root):
    run_dir = write_run(runs_root, "sac", "cartpole-balance", 3, None, status="running")
    rs = load_runs(runs_root)
    missing = rs.problems[rs.problems["kind"] == "missing"]
    assert list(missing["path"]) == [str(run_dir / "eval.csv")]
    assert problem_keys(rs.problems, "missing") == {("sac", "cartpole-balance", 3)}


def test_load_runs_expected_but_absent_is_missing(runs_root):
    rs = load_runs(runs_root, expected=[("sac", "cartpole-balance", 1), ("sac", "cartpole-balance", 7),
                                        ("mbdpo", "mw-assembly", 1)])
    assert problem_keys(rs.problems, "missing") == {("sac", "cartpole-balance", 7), ("mbdpo", "mw-assembly", 1)}
    paths = set(rs.problems.loc[rs.problems["kind"] == "missing", "path"])
    assert str(runs_root / "sac" / "cartpole-balance" / "7") in paths


def test_load_runs_seed_hole_in_found_grid_is_missing(runs_root):
    write_run(runs_root, "sac", "walker-walk", 1, CP_EVALS[1])  # sac has seeds 1, 2 elsewhere: seed 2 is a hole
    rs = load_runs(runs_root)
    assert problem_keys(rs.problems, "missing") == {("sac", "walker-walk", 2)}


def test_load_runs_running_run_is_incomplete(runs_root):
    run_dir = write_run(runs_root, "sac", "cartpole-balance", 3, [(0, 30.0, None), (1000, 300.0, None)],
                        status="running")
    rs = load_runs(runs_root)
    inc = rs.problems[rs.problems["kind"] == "incomplete"]
    assert list(inc["path"]) == [str(run_dir)]
    assert problem_keys(rs.problems, "incomplete") == {("sac", "cartpole-balance", 3)}
    assert "1000" in inc["message"].iloc[0]  # says where its evaluations end
    # its evaluations are still used
    assert sorted(rs.evals.loc[rs.evals["seed"] == 3, "step"]) == [0, 1000]


def test_load_runs_unknown_task(runs_root):
    run_dir = write_run(runs_root, "sac", "no-such-task", 1, CP_EVALS[1])
    rs = load_runs(runs_root)
    assert list(rs.problems.loc[rs.problems["kind"] == "unknown_task", "path"]) == [str(run_dir)]
    assert "no-such-task" not in set(rs.evals["task"])


def test_load_runs_mixed_configs_are_never_averaged(tmp_path):
    root = tmp_path / "runs"
    write_run(root, "sac", "cartpole-balance", 1, CP_EVALS[1], config_hash="aaaaaaaa11112222", train=TRAIN_ROWS)
    write_run(root, "sac", "cartpole-balance", 2, CP_EVALS[2], config_hash="bbbbbbbb33334444",
              agent={"lr": 0.01, "hidden_dim": 64})
    rs = load_runs(root)
    labels = {"sac@aaaaaaaa", "sac@bbbbbbbb"}
    assert set(rs.evals["algorithm"]) == labels
    seeds = {a: set(g["seed"]) for a, g in rs.evals.groupby("algorithm")}
    assert seeds == {"sac@aaaaaaaa": {1}, "sac@bbbbbbbb": {2}}
    assert set(rs.runs["algorithm"]) == labels
    assert set(rs.train["algorithm"]) == {"sac@aaaaaaaa"}
    mixed = rs.problems[rs.problems["kind"] == "mixed_config"]
    assert problem_keys(rs.problems, "mixed_config") == {("sac", "cartpole-balance", None)}
    assert "sac@aaaaaaaa" in mixed["message"].iloc[0] and "sac@bbbbbbbb" in mixed["message"].iloc[0]
    assert problem_keys(rs.problems, "missing") == set()  # each label's seeds are complete


def test_load_runs_nonexistent_root(tmp_path):
    missing = tmp_path / "no-runs-here"
    with pytest.raises(AnalysisInputError, match=str(missing)):
        load_runs(missing)


# ---------------------------------------------------------------------------------------------------- statistics

def test_iqm_by_hand():
    # 1..8: a quarter (2 values) trimmed at each end -> mean(3, 4, 5, 6) = 4.5
    assert stats.iqm(np.arange(1, 9)) == pytest.approx(4.5)
    # 4 runs x 2 tasks, all 8 scores pooled: sorted 0 10 20 30 40 50 100 1000 -> mean(20, 30, 40, 50) = 35
    matrix = np.array([[0, 100], [10, 20], [30, 40], [50, 1000]], dtype=float)
    assert stats.iqm(matrix) == pytest.approx(35.0)
    assert stats.METRICS["iqm"](matrix) == pytest.approx(35.0)
    assert stats._VECTOR_METRICS["iqm"](matrix[None])[0] == pytest.approx(35.0)


def test_optimality_gap_by_hand():
    # clipped at 100: 50, 100, 90, 100 -> mean 85 -> gap 15
    matrix = np.array([[50, 120], [90, 100]], dtype=float)
    assert stats.METRICS["optimality_gap"](matrix) == pytest.approx(15.0)
    assert stats._VECTOR_METRICS["optimality_gap"](matrix[None])[0] == pytest.approx(15.0)


def test_median_is_median_of_task_means_by_hand():
    # rliable's median: task means (1+3)/2=2, (10+10)/2=10, (0+100)/2=50 -> median 10
    matrix = np.array([[1, 10, 0], [3, 10, 100]], dtype=float)
    assert stats.METRICS["median"](matrix) == pytest.approx(10.0)


@pytest.mark.parametrize("metric", ["iqm", "mean", "median", "optimality_gap"])
def test_vector_metrics_match_rliable(metric):
    rng = np.random.default_rng(1)
    stack = rng.exponential(1.0, size=(25, 5, 7)) * np.linspace(10, 120, 7)  # (reps, runs, tasks), skewed
    expected = np.array([stats.METRICS[metric](m) for m in stack])
    np.testing.assert_allclose(stats._VECTOR_METRICS[metric](stack), expected, rtol=1e-10)


def test_vectorised_poi_matches_rliable():
    rng = np.random.default_rng(2)
    x = rng.integers(0, 4, size=(15, 4, 3)).astype(float)  # small integers: plenty of ties
    y = rng.integers(0, 4, size=(15, 3, 3)).astype(float)
    expected = [rl_metrics.probability_of_improvement(a, b) for a, b in zip(x, y)]
    np.testing.assert_allclose(stats._poi_vectorised(x, y), expected, rtol=1e-10)


def test_stratified_bootstrap_resamples_within_tasks():
    matrix = np.array([[1, 10, 100], [2, 20, 200], [3, 30, 300]], dtype=float)
    boot = stats.stratified_bootstrap(matrix, 50, np.random.default_rng(0))
    assert boot.shape == (50, 3, 3)
    for t in range(3):
        assert set(np.unique(boot[:, :, t])) <= set(matrix[:, t])
    assert len(np.unique(boot[:, :, 0])) > 1  # it does resample


def test_score_matrix_keeps_the_run_count_that_keeps_most_runs():
    # counts a:5 b:5 c:2 -> n=2 keeps 6 runs, n=5 keeps 10: n=5, c left out
    values = pd.concat([score_values({"x": np.arange(10).reshape(5, 2)}, task_names=["a", "b"]),
                        score_values({"x": np.array([[7.0], [8.0]])}, task_names=["c"])])
    matrix, tasks, notes = stats.score_matrix(values)
    assert tasks == ["a", "b"] and matrix.shape == (5, 2)
    np.testing.assert_array_equal(matrix, np.arange(10).reshape(5, 2))
    assert len(notes) == 1 and notes[0].startswith("c:") and "left out" in notes[0]


def test_score_matrix_tie_prefers_more_tasks():
    # counts a:4 b:2 -> n=2 keeps 4, n=4 keeps 4: tie, more tasks -> n=2, a keeps its first 2 seeds
    a = pd.DataFrame({"task": "a", "seed": [4, 3, 2, 1], "score": [40.0, 30.0, 20.0, 10.0]})
    b = pd.DataFrame({"task": "b", "seed": [1, 2], "score": [5.0, 6.0]})
    matrix, tasks, notes = stats.score_matrix(pd.concat([a, b]))
    assert tasks == ["a", "b"]
    np.testing.assert_array_equal(matrix, [[10.0, 5.0], [20.0, 6.0]])  # seeds 1 and 2 of a
    assert len(notes) == 1 and notes[0].startswith("a:") and "2 run(s)" in notes[0]


def test_score_matrix_explicit_tasks():
    values = score_values({"x": np.arange(6).reshape(3, 2)}, task_names=["a", "b"])
    values = values[~((values["task"] == "b") & (values["seed"] == 3))]  # b has 2 runs
    matrix, tasks, _ = stats.score_matrix(values, ["b", "a"])
    assert tasks == ["b", "a"] and matrix.shape == (2, 2)
    with pytest.raises(ValueError, match="zzz"):
        stats.score_matrix(values, ["a", "zzz"])


def normal_values(runs: int, tasks: int = 10, seed: int = 0) -> pd.DataFrame:
    return score_values({"alg": np.random.default_rng(seed).normal(50.0, 5.0, size=(runs, tasks))})


def test_interval_estimates_contain_point_and_true_mean():
    out = stats.interval_estimates(normal_values(5), metrics=["mean", "iqm", "optimality_gap"], reps=REPS)
    assert set(out["domain"]) == {"DMControl", "All"}
    assert len(out) == 2 * 3
    assert (out["n_tasks"] == 10).all() and (out["n_runs"] == 50).all()
    assert ((out["low"] <= out["value"]) & (out["value"] <= out["high"])).all()
    mean = out[(out["domain"] == "DMControl") & (out["metric"] == "mean")].iloc[0]
    assert mean["low"] < 50.0 < mean["high"]
    assert mean["high"] - mean["low"] < 5.0  # the CI of a mean of 50 scores of sd 5 is about ±1.4


def test_interval_estimates_narrower_with_more_runs():
    def width(runs):
        row = stats.interval_estimates(normal_values(runs), metrics=["mean"], reps=REPS, overall=False).iloc[0]
        return row["high"] - row["low"]

    assert width(50) < 0.6 * width(5)  # ~ 1/sqrt(10) expected


def test_interval_estimates_overall_uses_common_tasks():
    values = pd.concat([score_values({"a": np.full((3, 3), 10.0)}, task_names=["t1", "t2", "t3"]),
                        score_values({"b": np.full((3, 2), 20.0)}, task_names=["t1", "t2"])])
    out = stats.interval_estimates(values, metrics=["mean"], reps=REPS)
    overall = out[out["domain"] == "All"].set_index("algorithm")
    assert overall.loc["a", "n_tasks"] == 2 and overall.loc["b", "n_tasks"] == 2
    per_domain = out[out["domain"] == "DMControl"].set_index("algorithm")
    assert per_domain.loc["a", "n_tasks"] == 3


@pytest.mark.parametrize("metric", ["iqm", "mean", "median", "optimality_gap"])
def test_engines_agree(metric):
    scores = np.random.default_rng(0).exponential(1.0, size=(10, 10)) * np.linspace(10, 100, 10)  # skewed tasks
    values = score_values({"alg": scores})
    kw = {"metrics": [metric], "reps": 500, "seed": 3, "overall": False}
    fast = stats.interval_estimates(values, engine="numpy", **kw).iloc[0]
    ref = stats.interval_estimates(values, engine="rliable", **kw).iloc[0]
    assert fast["value"] == pytest.approx(ref["value"], rel=1e-12)
    tol = 0.2 * (ref["high"] - ref["low"])  # both are percentile bootstraps, with different random numbers
    assert abs(fast["low"] - ref["low"]) < tol
    assert abs(fast["high"] - ref["high"]) < tol
    assert fast["low"] <= fast["value"] <= fast["high"]


def test_interval_estimates_reproducible():
    values = normal_values(5)
    a = stats.interval_estimates(values, reps=REPS, seed=7)
    b = stats.interval_estimates(values, reps=REPS, seed=7)
    c = stats.interval_estimates(values, reps=REPS, seed=8)
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_series_equal(a["value"], c["value"])
    assert not np.allclose(a["low"], c["low"])


def test_interval_estimates_rejects_unknown_metric_and_engine():
    values = normal_values(3)
    with pytest.raises(ValueError, match="bogus_metric"):
        stats.interval_estimates(values, metrics=["iqm", "bogus_metric"], reps=REPS)
    with pytest.raises(ValueError, match="bogus_engine"):
        stats.interval_estimates(values, reps=REPS, engine="bogus_engine")
    with pytest.raises(ValueError, match="bogus_metric"):
        stats.sample_efficiency_curves(values.assign(step=0), metric="bogus_metric", reps=REPS)


def test_poi_strictly_better_everywhere_is_one():
    values = score_values({"good": np.full((3, 4), 80.0) + np.arange(3)[:, None],
                           "bad": np.full((3, 4), 20.0) + np.arange(3)[:, None]})
    out = stats.probability_of_improvement(values, "good", reps=REPS)
    assert len(out) == 1
    row = out.iloc[0]
    assert (row["algorithm"], row["baseline"]) == ("good", "bad")
    assert row["value"] == 1.0 and row["low"] == 1.0 and row["high"] == 1.0
    assert row["n_tasks"] == 4


def test_poi_identical_is_one_half():
    scores = np.random.default_rng(4).normal(50, 10, size=(4, 3))
    out = stats.probability_of_improvement(score_values({"a": scores, "b": scores}), "a", reps=REPS)
    assert out["value"].iloc[0] == pytest.approx(0.5)
    assert out["low"].iloc[0] <= 0.5 <= out["high"].iloc[0]


@pytest.mark.parametrize("engine", ["numpy", "rliable"])
def test_poi_by_hand(engine):
    # task t0: x=[2,3] vs y=[1,2]: 2>1 (1), 2=2 (1/2), 3>1 (1), 3>2 (1) -> 3.5/4 = 0.875
    # task t1: x=[0,0] vs y=[1,1]: never better -> 0.  Average over tasks: 0.4375
    values = score_values({"x": np.array([[2.0, 0.0], [3.0, 0.0]]), "y": np.array([[1.0, 1.0], [2.0, 1.0]])},
                          task_names=["t0", "t1"])
    row = stats.probability_of_improvement(values, "x", ["y"], reps=REPS, engine=engine).iloc[0]
    assert row["value"] == pytest.approx(0.4375)
    assert 0.0 <= row["low"] <= row["high"] <= 1.0


def test_poi_point_equals_rliable_and_uses_common_tasks():
    rng = np.random.default_rng(5)
    x, y = rng.normal(55, 10, size=(5, 4)), rng.normal(50, 10, size=(4, 3))
    values = pd.concat([score_values({"cand": x}, task_names=["t0", "t1", "t2", "t3"]),
                        score_values({"base": y}, task_names=["t0", "t1", "t2"])])
    row = stats.probability_of_improvement(values, "cand", reps=REPS).iloc[0]
    assert row["n_tasks"] == 3
    assert row["value"] == pytest.approx(rl_metrics.probability_of_improvement(x[:, :3], y))
    assert row["low"] <= row["value"] <= row["high"]


def test_poi_unknown_candidate_lists_algorithms():
    values = score_values({"alpha": np.ones((2, 2)), "beta": np.zeros((2, 2))})
    with pytest.raises(ValueError, match="gamma") as info:
        stats.probability_of_improvement(values, "gamma", reps=REPS)
    assert "alpha" in str(info.value) and "beta" in str(info.value)
    with pytest.raises(ValueError, match="delta"):
        stats.probability_of_improvement(values, "alpha", ["delta"], reps=REPS)


def test_performance_profile_by_hand():
    # scores 10, 20, 30, 40: > 0: all; > 15: 3 of 4; > 30: only 40 (strictly greater); > 50: none
    values = score_values({"a": np.array([[10.0, 20.0], [30.0, 40.0]])})
    out = stats.performance_profiles(values, taus=np.array([0.0, 15.0, 30.0, 50.0]), reps=REPS)
    assert list(out["tau"]) == [0.0, 15.0, 30.0, 50.0]
    np.testing.assert_allclose(out["fraction"], [1.0, 0.75, 0.25, 0.0])
    assert (out["n_tasks"] == 2).all()


def test_performance_profiles_monotone():
    rng = np.random.default_rng(6)
    values = score_values({"a": rng.uniform(0, 100, size=(5, 6)), "b": rng.uniform(20, 90, size=(5, 6))})
    out = stats.performance_profiles(values, reps=REPS)
    for alg, g in out.groupby("algorithm"):
        assert len(g) == 101, alg
        frac = g.sort_values("tau")["fraction"].to_numpy()
        assert (np.diff(frac) <= 0).all(), alg
        assert ((0 <= g["low"]) & (g["low"] <= g["high"]) & (g["high"] <= 1)).all(), alg
    b = out[out["algorithm"] == "b"].set_index("tau")["fraction"]
    assert b.loc[10.0] == 1.0 and b.loc[95.0] == 0.0


def test_sample_efficiency_curves_one_iqm_per_algorithm_domain_step():
    rng = np.random.default_rng(7)
    runs = {}
    for alg, slope in (("fast", 3.0), ("slow", 1.0)):
        for task in ("cartpole-balance", "walker-walk"):
            for seed in (1, 2, 3):
                runs[(alg, task, seed)] = [(step, min(1000.0, slope * step / 10 + rng.uniform(0, 50)))
                                           for step in (0, 100, 200, 300)]
    aligned, dropped = align(make_evals(runs), np.array([0, 100, 200, 300]))
    assert dropped.empty
    curves = stats.sample_efficiency_curves(aligned, reps=REPS)
    assert len(curves) == 2 * 4
    assert not curves.duplicated(["algorithm", "domain", "step"]).any()
    assert set(curves["domain"]) == {"DMControl"}
    for row in curves.itertuples():
        at = aligned[(aligned["algorithm"] == row.algorithm) & (aligned["step"] == row.step)]
        assert row.value == pytest.approx(stats.iqm(at["score"].to_numpy()))
        assert row.n_tasks == 2 and row.n_runs == 6
        assert row.low <= row.value <= row.high
    fast = curves[curves["algorithm"] == "fast"].set_index("step")["value"]
    slow = curves[curves["algorithm"] == "slow"].set_index("step")["value"]
    assert fast.loc[300] > slow.loc[300]


# ------------------------------------------------------------------------------- non-finite values, missing steps

def test_non_finite_return_is_reported_and_kept_out_of_the_curves(tmp_path, capsys):
    from algorithms.cli import main

    root = tmp_path / "runs"
    bad = write_run(root, "sac", "cartpole-balance", 1, [(0, 10.0, None), (1000, float("inf"), None),
                                                         (2000, 30.0, None)])
    write_run(root, "sac", "cartpole-balance", 2, [(0, 12.0, None), (1000, 20.0, None), (2000, 31.0, None)])
    data = load_runs(root)
    rows = data.problems.loc[data.problems["kind"] == "non_finite"]
    assert list(rows["path"]) == [str(bad / "eval.csv")] and "return" in rows["message"].iloc[0]
    assert np.isfinite(data.evals["return"]).all() and len(data.evals) == 5
    out = tmp_path / "out"
    assert main(["analyze", "--runs", str(root), "--out", str(out), "--reps", "50", "--no-per-task"]) == 0
    assert "warning" in capsys.readouterr().err
    curves = pd.read_csv(out / "tables" / "aggregate_curves.csv")
    assert np.isfinite(curves.select_dtypes("number").to_numpy(dtype=float)).all()
    problems = pd.read_csv(out / "tables" / "problems.csv")
    assert str(bad / "eval.csv") in set(problems.loc[problems["kind"] == "non_finite", "path"])


def test_non_finite_released_value_is_reported(tmp_path):
    path = write_curve(tmp_path, "tdmpc2", "cartpole-balance", "reward",
                       {1: [(0, 1.0), (1000, float("nan")), (2000, 3.0)], 2: [(0, 1.0), (1000, 2.0), (2000, 3.0)]})
    data = load_published(tmp_path)
    rows = data.problems.loc[data.problems["kind"] == "non_finite"]
    assert list(rows["path"]) == [str(path)] and list(rows["seed"]) == [1]
    assert np.isfinite(data.evals["return"]).all() and len(data.evals) == 5


def test_evaluation_missing_in_the_middle_is_a_missing_step(tmp_path):
    root = tmp_path / "runs"
    holed = write_run(root, "sac", "cartpole-balance", 1,
                      [(0, 1.0, None), (1000, 2.0, None), (3000, 4.0, None), (4000, 5.0, None)], total_env_steps=4000)
    # evaluations land at the first episode boundary after their step: late ones are not holes
    write_run(root, "sac", "cartpole-balance", 2,
              [(0, 1.0, None), (1050, 2.0, None), (2100, 3.0, None), (3000, 4.0, None), (4000, 5.0, None)],
              total_env_steps=4000)
    evals = load_runs(root).evals
    problems = missing_steps(evals, np.array([0, 1000, 2000, 3000, 4000]))
    assert list(problems["kind"]) == ["missing_step"] and list(problems["seed"]) == [1]
    assert problems["path"].iloc[0] == str(holed / "eval.csv")
    assert "2000 filled from step 1000" in problems["message"].iloc[0]
