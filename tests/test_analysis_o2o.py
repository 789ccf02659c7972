"""Fig. 7 (issue 16 item 4): fine-tuned vs from-scratch runs are paired by algorithm, task and seed, their table
matches a hand computation, a run without a partner is a problem row (never silently dropped), the figures are
readable and the main analysis still works with the O2O family names."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import figures as F
from analysis import o2o as O
from analysis import report
from analysis.load import load_runs
from analysis.report import analyze
from tests.test_analysis_data import write_run
from tests.test_analysis_figures import check_readable

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")
REPS = 200
STEPS = (0, 1000, 2000)
# (family, task, seed) -> returns at STEPS; DMControl score = return / 10
RETURNS = {
    ("mbdpo-finetune", "cartpole-balance", 1): (300, 500, 600),
    ("mbdpo-finetune", "cartpole-balance", 2): (200, 450, 800),
    ("mbdpo-scratch", "cartpole-balance", 1): (0, 200, 400),
    ("mbdpo-scratch", "cartpole-balance", 2): (10, 300, 500),
    ("mbdpo-finetune", "walker-walk", 1): (100, 150, 200),
    ("mbdpo-finetune", "walker-walk", 2): (120, 160, 220),
    ("mbdpo-scratch", "walker-walk", 1): (50, 300, 700),
    ("mbdpo-scratch", "walker-walk", 2): (60, 320, 720),
}


def write_o2o_runs(root: Path, returns: dict = RETURNS) -> Path:
    for (name, task, seed), values in returns.items():
        write_run(root, name, task, seed, [(s, r, None) for s, r in zip(STEPS, values)], total_env_steps=STEPS[-1])
    return root


@pytest.fixture
def runs(tmp_path) -> Path:
    return write_o2o_runs(tmp_path / "runs")


def test_family_names():
    assert O.family_of("mbdpo-finetune") == ("mbdpo", "finetune", False)
    assert O.family_of("tdmpc2-scratch@ab12") == ("tdmpc2", "scratch", True)
    assert O.family_of("mbdpo") is None and O.family_of("mbdpo-o2o-pretrain") is None
    assert O.family_of("mbdpo-finetune (published)") is None


def test_table_matches_a_hand_computation(runs):
    result = O.o2o_analysis(load_runs(runs).evals, reps=REPS)
    assert result.problems.empty
    row = result.table.set_index(["algorithm", "task"]).loc[("mbdpo", "cartpole-balance")]
    assert row["step"] == 2000 and row["n_seeds"] == 2
    assert row["finetune"] == pytest.approx((60 + 80) / 2)
    assert row["scratch"] == pytest.approx((40 + 50) / 2)
    assert row["difference"] == pytest.approx(70 - 45)
    # fine-tune's mean curve: 25, 47.5, 70; scratch's final 45 is first reached at env step 1000
    assert row["reach_step"] == 1000 and row["reach_fraction"] == pytest.approx(0.5)
    assert row["finetune_low"] <= 70 <= row["finetune_high"] and row["finetune_high"] <= 80
    walker = result.table.set_index(["algorithm", "task"]).loc[("mbdpo", "walker-walk")]
    assert np.isnan(walker["reach_step"])  # fine-tune (21) never reaches scratch's final 71
    assert walker["difference"] == pytest.approx(21 - 71)
    curve = result.curves[(result.curves["task"] == "cartpole-balance") & (result.curves["setting"] == "finetune")]
    assert curve.sort_values("step")["value"].tolist() == pytest.approx([25, 47.5, 70])
    agg = result.table.set_index(["algorithm", "task"]).loc[("mbdpo", O.ALL_TASKS)]
    # IQM of 4 scores = mean of the middle two: fine-tune {60, 80, 20, 22} -> (22 + 60) / 2
    assert agg["finetune"] == pytest.approx((22 + 60) / 2) and agg["n_tasks"] == 2
    assert agg["scratch"] == pytest.approx((50 + 70) / 2)


def test_unpaired_runs_are_problem_rows(tmp_path):
    returns = dict(RETURNS)
    returns[("mbdpo-finetune", "cartpole-balance", 3)] = (0, 0, 0)   # a seed scratch lacks
    returns[("tdmpc2-scratch", "walker-walk", 1)] = (0, 0, 0)        # a family without its fine-tune partner
    del returns[("mbdpo-scratch", "walker-walk", 2)]                  # fine-tune seed 2 of walker now alone
    result = O.o2o_analysis(load_runs(write_o2o_runs(tmp_path / "runs", returns)).evals, reps=REPS)
    unpaired = {(r.algorithm, r.task, r.seed) for r in result.problems.itertuples() if r.kind == O.UNPAIRED}
    assert unpaired == {("mbdpo-finetune", "cartpole-balance", 3), ("tdmpc2-scratch", "walker-walk", 1),
                        ("mbdpo-finetune", "walker-walk", 2)}
    assert all(result.problems["path"].str.endswith("eval.csv"))
    table = result.table.set_index(["algorithm", "task"])
    assert table.loc[("mbdpo", "cartpole-balance"), "n_seeds"] == 2  # seed 3 not averaged in
    assert table.loc[("mbdpo", "cartpole-balance"), "finetune"] == pytest.approx(70)
    assert table.loc[("mbdpo", "walker-walk"), "finetune"] == pytest.approx(20)  # seed 1 only
    assert "tdmpc2" not in set(result.table["algorithm"])


def test_figures_are_readable(runs):
    result = O.o2o_analysis(load_runs(runs).evals, reps=REPS)
    fig = O.o2o_curves_figure(result.curves)
    check_readable("o2o_curves", fig)
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    # these runs' run.json records no pretraining set: not called held-out (tests/test_analysis_honest_figures.py)
    assert len(titles) == 3 and " ".join(titles[-1].split()) == "all 2 tasks (pretraining set not recorded)"
    labels = {t.get_text() for t in fig.legends[0].get_texts()}
    assert labels == {"MBDPO fine-tuned", "MBDPO from scratch"}
    styles = {line.get_label(): line.get_linestyle() for line in fig.axes[0].get_lines()}
    assert styles == {"MBDPO fine-tuned": "-", "MBDPO from scratch": "--"}
    check_readable("o2o_aggregate", O.o2o_aggregate_figure(result.curves))


def test_analyze_writes_o2o_outputs_and_main_figures_still_work(tmp_path, monkeypatch):
    returns = dict(RETURNS)
    returns[("mbdpo-finetune", "cartpole-balance", 3)] = (0, 0, 0)
    write_o2o_runs(tmp_path / "runs", returns)
    figures = {}
    save = F.save

    def keep(fig, path, *args, **kwargs):
        figures[path.name] = fig
        return save(fig, path, *args, **kwargs)

    monkeypatch.setattr(report.F, "save", keep)
    out = tmp_path / "out"
    result = analyze(out, runs=tmp_path / "runs", reps=50, scale="smoke")
    for name in ("tables/o2o.csv", "tables/o2o.md", "tables/o2o_curves.csv", "figures/o2o_curves.png",
                 "figures/o2o_aggregate.png", "figures/aggregate_curves.png", "figures/per_task_dmcontrol.png"):
        assert (out / name).is_file(), name
    table = pd.read_csv(out / "tables" / "o2o.csv")
    cell = table[(table["algorithm"] == "mbdpo") & (table["task"] == "cartpole-balance")].iloc[0]
    assert (cell["finetune"], cell["scratch"], cell["reach_step"]) == (pytest.approx(70), pytest.approx(45), 1000)
    problems = pd.read_csv(out / "tables" / "problems.csv")
    assert problems.loc[problems["kind"] == O.UNPAIRED, "seed"].tolist() == [3]
    summary = (out / "summary.md").read_text()
    assert "## Offline-to-online fine-tuning (fig. 7)" in summary and "1 fine-tune/scratch run(s) unpaired" in summary
    assert "| 70.0 [" in summary
    assert {"o2o_curves.png", "o2o_aggregate.png", "aggregate_curves.png", "performance_profiles.png"} <= set(figures)
    for name, fig in figures.items():
        check_readable(name, fig)
    legend = {t.get_text() for t in figures["aggregate_curves.png"].legends[0].get_texts()}
    assert legend == {"MBDPO fine-tuned", "MBDPO from scratch"}
    assert O.UNPAIRED in set(result.problems["kind"])


def test_o2o_families_have_distinct_colours():
    """The spare colours chosen by name gave mbdpo-scratch and tdmpc2-finetune the same one."""
    names = ["mbdpo", "tdmpc2", "mbdpo-finetune", "mbdpo-scratch", "tdmpc2-finetune", "tdmpc2-scratch"]
    assert len(set(F.colors(names).values())) == len(names)
    assert F.ordered(["tdmpc2-scratch", "sac", "mbdpo-scratch", "mbdpo-finetune"]) == \
        ["mbdpo-finetune", "mbdpo-scratch", "tdmpc2-scratch", "sac"]


def test_no_partner_at_all_writes_no_figure_but_says_why(tmp_path):
    write_o2o_runs(tmp_path / "runs", {k: v for k, v in RETURNS.items() if k[0] == "mbdpo-finetune"})
    out = tmp_path / "out"
    analyze(out, runs=tmp_path / "runs", reps=50)
    assert not (out / "figures" / "o2o_curves.png").exists()
    assert "No fine-tune/scratch pair" in (out / "summary.md").read_text()
    problems = pd.read_csv(out / "tables" / "problems.csv")
    assert (problems["kind"] == O.UNPAIRED).sum() == 4


def test_difference_ci_comes_from_independent_bootstraps(runs):
    """With the same draws for both families the spread cancels (walker-walk's CI was [-50, -50])."""
    row = O.o2o_analysis(load_runs(runs).evals, reps=REPS).table.set_index("task").loc["walker-walk"]
    assert row["difference_low"] < -50 < row["difference_high"]
    assert row["difference_low"] >= -52 and row["difference_high"] <= -48  # extremes: 20 - 72, 22 - 70


# ------------------------------------------------------------------------------------------------- latent exports

LATENT_TASKS = ("cartpole-balance", "reacher-easy", "walker-walk")  # obs 5/6/24, actions 1/2/6
TINY = {"model_size": "1.7M", "enc_dim": 32, "mlp_dim": 32, "latent_dim": 16, "task_dim": 8, "mpc": False,
        "diag_every": 0}


@pytest.fixture(scope="module")
def offline_run(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny TD-MPC2 offline run (3 tasks, 1 random episode each, 4 updates; acting by the policy prior) and its
    dataset."""
    from algorithms.cli import main
    from envs import make_env
    from offline.writer import write_dataset
    from tests.test_offline_train import random_episodes

    root = tmp_path_factory.mktemp("latents")
    dataset = root / "three"
    envs = [make_env(t, seed=0) for t in LATENT_TASKS]
    write_dataset(dataset, list(LATENT_TASKS), [e.observation_space.shape[0] for e in envs],
                  [e.action_space.shape[0] for e in envs],
                  {t: random_episodes(t, 1, seed=i + 1) for i, t in enumerate(LATENT_TASKS)}, source="random")
    assert main(["train", "--offline", str(dataset), "--algo", "tdmpc2", "--steps", "4", "--results-dir",
                 str(root / "results"), "offline.batch_size=8", "eval_every=4", "eval_episodes=1", "progress=false",
                 "threads=1", *[f"agent.{k}={v}" for k, v in TINY.items()]]) == 0
    return root / "results" / "runs" / "tdmpc2-offline" / "three" / "1", dataset


def test_export_latents_from_a_dataset_matches_the_checkpoints_encoder(offline_run, tmp_path):
    import gymnasium as gym
    import torch

    from algorithms.cli import main
    from algorithms.common.checkpoint import CheckpointManager
    from algorithms.tdmpc2 import Agent, Config
    from analysis.embedding import load_latents
    from envs import get_task
    from offline.dataset import read_dataset

    run, dataset = offline_run
    out = tmp_path / "latents.npz"
    assert main(["export-latents", str(run), "--out", str(out), "--dataset", str(dataset), "--episodes", "1"]) == 0
    latents = load_latents(out)
    assert latents["tasks"] == list(LATENT_TASKS) and latents["meta"]["source"] == "dataset"
    # rebuilt here as the offline trainer built it (not by the export's code), with the checkpoint's weights
    state, _, _ = CheckpointManager(run / "checkpoints").load_latest()
    cfg = Config(**{k: v for k, v in TINY.items()})
    agent = Agent(cfg, get_task(LATENT_TASKS[0]), gym.spaces.Box(-np.inf, np.inf, (24,), np.float32),
                  gym.spaces.Box(-1, 1, (6,), np.float32), torch.device("cpu"), num_tasks=3, task_id=0,
                  action_dims=[1, 2, 6], discounts=[get_task(t).discount for t in LATENT_TASKS])
    agent.load_state_dict(state["agent"])
    assert np.allclose(latents["task_embedding"], state["agent"]["model"]["task_emb.weight"].numpy())
    _, episodes = read_dataset(dataset)
    for task_id, task in enumerate(LATENT_TASKS):
        obs = torch.as_tensor(episodes[task][0].obs)
        obs = torch.nn.functional.pad(obs, (0, 24 - obs.shape[1]))
        with torch.no_grad():
            expected = agent.model.eval().encode(obs, torch.full((len(obs),), task_id)).numpy()
        rows = latents["task_id"] == task_id
        assert rows.sum() == len(obs) and latents["step"][rows].tolist() == list(range(len(obs)))
        assert np.allclose(latents["z"][rows], expected, atol=1e-5)


def test_export_latents_rollouts_and_figure(offline_run, tmp_path):
    from algorithms.cli import main
    from algorithms.commands.latents import LatentExportError, export_latents
    from analysis.embedding import latent_projection, latent_trajectories_figure, load_latents

    run, _ = offline_run
    out = export_latents(run, tmp_path / "roll.npz", episodes=1, tasks=["cartpole-balance", "reacher-easy"])
    latents = load_latents(out)
    assert latents["meta"]["source"] == "rollout" and latents["z"].shape[1] == 16
    assert sorted(set(latents["task_id"].tolist())) == [0, 1]
    assert np.isnan(latents["reward"][latents["step"] == latents["step"].max()]).all()  # the last observation
    returns = latents["episode_return"]
    assert returns.shape == (2, 3)
    for task_id, _, ret in returns:
        rows = latents["task_id"] == task_id
        assert np.nansum(latents["reward"][rows]) == pytest.approx(ret, rel=1e-5)
    projection, ratio = latent_projection(latents)
    assert len(projection) == len(latents["z"]) and 0 < ratio.sum() <= 1 + 1e-9
    fig = latent_trajectories_figure(projection, ratio)
    check_readable("latent_trajectories", fig)
    assert {t.get_text() for t in fig.legends[0].get_texts()} == {"cartpole-balance", "reacher-easy"}
    with pytest.raises(LatentExportError, match="not in the checkpoint's task table"):
        export_latents(run, tmp_path / "x.npz", tasks=["hopper-hop"])
    # analyze --latents: the trajectories and (3 tasks in the table) the task-embedding t-SNE from the export
    runs = write_o2o_runs(tmp_path / "runs")
    analysis = tmp_path / "analysis"
    assert main(["analyze", "--runs", str(runs), "--out", str(analysis), "--reps", "20", "--latents", str(out)]) == 0
    assert (analysis / "figures" / "latent_trajectories.png").is_file()
    assert (analysis / "figures" / "task_embedding.png").is_file()
    table = pd.read_csv(analysis / "tables" / "task_embedding.csv")
    assert table["task"].tolist() == list(LATENT_TASKS)
