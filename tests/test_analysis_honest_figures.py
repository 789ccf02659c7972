"""Figures and summary.md say what they show (issue: honest figures): an O2O task the pretraining saw is never
called "held-out", the offline legend tells algorithms from sizes, one model size is no scaling curve, interval
dots sit inside their panels and "1 task" is singular, an absent diagnostic is no empty panel, and summary.md says
which tasks each aggregate row uses.

Fixtures are small synthetic tables or run folders (analysis/synthetic.py, tests/test_analysis_o2o.py's writer),
so the file runs in seconds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgb

from analysis import figures as F
from analysis import o2o as O2O
from analysis import offline as O
from analysis import report, stats, synthetic
from analysis.load import MBDPO_PRESET_PARAMETERS, OFFLINE_COLUMNS, PRESET_PARAMETERS, load_runs
from analysis.report import analyze
from tests.test_analysis_figures import check_readable
from tests.test_analysis_o2o import write_o2o_runs

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")
REPS = 50


def _flat(text: str) -> str:
    """``text`` on one line (titles and messages are wrapped to fit their panel)."""
    return " ".join(text.split())


def _titles(fig) -> list[str]:
    return [_flat(ax.get_title()) for ax in fig.axes if ax.get_visible()]


def _inside(low: float, high: float, lim: tuple[float, float], margin: float = 0.06) -> bool:
    """Whether [low, high] lies at least ``margin`` of the axis width away from both of its edges."""
    width = lim[1] - lim[0]
    return low >= lim[0] + margin * width and high <= lim[1] - margin * width


# ------------------------------------------------------------------------------------------- 1. O2O "held-out"

def _record_pretraining(root: Path, task: str, new: bool | None, pretrained: list[str]) -> None:
    """Add the fine-tuning run.json keys (results/README.md) to every ``*-finetune`` run of ``task``."""
    for path in root.glob(f"*-finetune/{task}/*/run.json"):
        info = json.loads(path.read_text())
        info["init_pretrained_tasks"] = pretrained
        if new is not None:
            info["init_new_task"] = new
        path.write_text(json.dumps(info))


def test_o2o_calls_a_pretraining_task_seen_not_held_out(tmp_path, monkeypatch):
    root = write_o2o_runs(tmp_path / "runs")
    pretrained = ["cartpole-balance", "cheetah-run"]
    _record_pretraining(root, "cartpole-balance", False, pretrained)  # in the pretraining set
    _record_pretraining(root, "walker-walk", None, pretrained)  # only the task list: not in it → held-out
    data = load_runs(root)
    assert O2O.pretraining_status(data.runs) == {("mbdpo", "cartpole-balance"): O2O.SEEN,
                                                 ("mbdpo", "walker-walk"): O2O.HELD_OUT}
    result = O2O.o2o_analysis(data.evals, reps=REPS, runs=data.runs)
    table = result.table.set_index("task")
    assert table.loc["cartpole-balance", "pretraining"] == "seen in pretraining"
    assert table.loc["walker-walk", "pretraining"] == "held-out"
    assert table.loc[O2O.ALL_TASKS, "pretraining"] == "1 held-out, 1 seen in pretraining"
    assert set(result.curves.loc[result.curves["task"] == "cartpole-balance", "pretraining"]) == {O2O.SEEN}

    fig = O2O.o2o_curves_figure(result.curves)
    check_readable("o2o_curves", fig)
    titles = _titles(fig)
    cartpole = next(t for t in titles if t.startswith("cartpole-balance"))
    assert "seen in pretraining" in cartpole and "held-out" not in cartpole
    assert "held-out" in next(t for t in titles if t.startswith("walker-walk"))
    assert titles[-1] == "all 2 tasks (1 held-out, 1 seen in pretraining)"  # not "all held-out (2 tasks)"
    aggregate = O2O.o2o_aggregate_figure(result.curves)
    check_readable("o2o_aggregate", aggregate)
    assert _titles(aggregate) == ["Offline-to-online: all 2 tasks (1 held-out, 1 seen in pretraining)"]

    # every task held out: the word is earned; no record at all: not claimed
    _record_pretraining(root, "cartpole-balance", True, ["cheetah-run"])
    data = load_runs(root)
    curves = O2O.o2o_analysis(data.evals, reps=REPS, runs=data.runs).curves
    assert _titles(O2O.o2o_curves_figure(curves))[-1] == "all held-out (2 tasks)"
    unknown = O2O.o2o_analysis(data.evals, reps=REPS).curves
    assert "held-out" not in " ".join(_titles(O2O.o2o_curves_figure(unknown)))

    # analyze passes the run files' record on: summary.md's table says it
    _record_pretraining(root, "cartpole-balance", False, pretrained)
    monkeypatch.setattr(report.F, "save", lambda fig, path, *a, **k: Path(path))
    analyze(tmp_path / "out", runs=root, reps=REPS, per_task=False, claims=False)
    o2o = pd.read_csv(tmp_path / "out" / "tables" / "o2o.csv").set_index("task")
    assert o2o.loc["cartpole-balance", "pretraining"] == "seen in pretraining"
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "| cartpole-balance | seen in pretraining |" in summary


# ----------------------------------------------------------------------------------- 2. offline curves' legend

def _offline_curves() -> pd.DataFrame:
    rows = []
    for alg, presets in (("mbdpo", MBDPO_PRESET_PARAMETERS), ("tdmpc2", PRESET_PARAMETERS)):
        for size in ("1.7M", "6M"):
            for step in (0, 50, 100):
                value = 20.0 + step / 5 + (10 if size == "6M" else 0)
                rows.append({"dataset": "mt3", "algorithm": alg, "model_size": size, "params": float(presets[size]),
                             "step": step, "value": value, "low": value - 3, "high": value + 3, "n_tasks": 3,
                             "n_runs": 2})
    return pd.DataFrame(rows, columns=O.CURVE_COLUMNS)


def test_offline_legend_tells_algorithms_from_sizes():
    fig = O.offline_curves_figure(_offline_curves())
    check_readable("offline_curves", fig)
    legend = fig.legends[0]
    labels = [t.get_text() for t in legend.get_texts()]
    assert labels == ["MBDPO 1.7M (1.7M params)", "MBDPO 6M (6.0M params)", "TD-MPC2 1.7M (1.4M params)",
                      "TD-MPC2 6M (5.4M params)"]
    lines = {line.get_label(): line for ax in fig.axes for line in ax.get_lines()}
    mbdpo, tdmpc2 = lines["MBDPO 1.7M (1.7M params)"], lines["TD-MPC2 1.7M (1.4M params)"]
    assert [ax.get_title() for ax in fig.axes if ax.get_lines()] == [
        f"{name}, mt3\nbands: 95% CI over 3 tasks x 2 runs" for name in ("MBDPO", "TD-MPC2")]
    assert mbdpo.get_color() == tdmpc2.get_color()  # colour = size
    assert mbdpo.get_linestyle() != tdmpc2.get_linestyle()  # line style = algorithm
    styles = {(to_rgb(line.get_color()), line.get_linestyle())
              for line in lines.values()}
    assert len(styles) == len(lines)  # no two legend entries look alike


# ------------------------------------------------------------------------------------------------ 3. scaling

def _scaling(sizes: dict[str, tuple[str, ...]]) -> pd.DataFrame:
    """A scaling table (SCALING_COLUMNS): {dataset: model sizes}, both algorithms at every size."""
    rows = []
    for dataset, dataset_sizes in sizes.items():
        for alg, presets in (("mbdpo", MBDPO_PRESET_PARAMETERS), ("tdmpc2", PRESET_PARAMETERS)):
            for i, size in enumerate(dataset_sizes):
                mean = 40.0 + 10 * i + (5 if alg == "mbdpo" else 0)
                rows.append({"dataset": dataset, "algorithm": alg, "model_size": size,
                             "params": float(presets[size]), "mean": mean, "low": mean - 4, "high": mean + 4,
                             "n_tasks": 3, "n_seeds": 1, "step_min": 100, "step_max": 100, "notes": ""})
    return pd.DataFrame(rows, columns=O.SCALING_COLUMNS)


def test_one_model_size_is_a_message_not_a_curve(tmp_path):
    fig = O.scaling_figure(_scaling({"mt3": ("1.7M",)}))
    assert not [ax for ax in fig.axes if ax.axison and ax.has_data()]  # nothing drawn as a curve
    text = _flat(" ".join(t.get_text() for ax in fig.axes for t in ax.texts))
    assert "1 model size (1.7M)" in text and "at least 2 sizes" in text

    # a dataset of one size beside one of two: a message panel there, the curve here
    fig = O.scaling_figure(_scaling({"mt3": ("1.7M", "6M"), "mt30": ("1.7M",)}))
    drawn = [ax for ax in fig.axes if ax.get_visible() and ax.axison and ax.has_data()]
    assert len(drawn) == 1 and drawn[0].get_title().startswith("mt3 ")
    message = next(ax for ax in fig.axes if ax.get_visible() and not ax.axison)
    assert message.get_title().startswith("mt30") and "1 model size" in _flat(message.texts[0].get_text())

    # the report: two algorithms of one preset have two parameter counts but are one size, so no scaling.png
    offline = pd.DataFrame([{"source": "ours", "algorithm": alg, "name": f"{alg}-offline-1.7M", "dataset": "mt3",
                             "model_size": "1.7M", "params": float(presets["1.7M"]), "task": task,
                             "suite": "dmcontrol", "domain": "DMControl", "seed": seed, "step": step,
                             "step_unit": "update", "return": 0.0, "success": np.nan, "score": 30.0 + seed + step / 10,
                             "total_steps": 100, "config_hash": "h", "path": ""}
                            for alg, presets in (("mbdpo", MBDPO_PRESET_PARAMETERS), ("tdmpc2", PRESET_PARAMETERS))
                            for task in ("cartpole-balance", "walker-walk") for seed in (1, 2) for step in (0, 100)],
                           columns=OFFLINE_COLUMNS)
    written, lines = report.write_offline(offline, tmp_path, lambda fig, path: F.save(fig, path), reps=REPS)
    assert not (tmp_path / "figures" / "scaling.png").exists()
    assert any(line.startswith("No scaling figure") and "1 size: 1.7M" in line for line in lines)


def test_scaling_points_are_not_on_the_panel_edges():
    scaling = _scaling({"mt3": ("1.7M", "6M")})
    fig = O.scaling_figure(scaling)
    FigureCanvasAgg(fig).draw()
    ax = next(a for a in fig.axes if a.has_data())
    log = np.log10
    assert _inside(log(scaling["params"].min()), log(scaling["params"].max()), tuple(log(ax.get_xlim())))
    assert _inside(scaling["low"].min(), scaling["high"].max(), ax.get_ylim())
    # the online sweep's figure: one size is a message there too
    one = pd.DataFrame({"algorithm": ["mbdpo", "mbdpo"], "params": [1.7e6, 1.7e6], "task_set": "single-task",
                        "score": [40.0, 50.0]})
    assert "1 model size" in _flat(F.scaling_plot(one).axes[0].texts[0].get_text())


# ---------------------------------------------------------------------------------------- 4. interval estimates

def test_interval_dots_inside_the_panel_and_one_task_is_singular():
    rows = []
    for alg, (value, low, high) in {"mbdpo": (20.0, 20.0, 20.0), "sac": (60.0, 55.0, 70.0)}.items():
        for metric in ("iqm", "mean"):  # mbdpo: one run on one task, a zero-width interval at the lowest value
            rows.append({"algorithm": alg, "domain": "All", "metric": metric, "value": value, "low": low,
                         "high": high, "n_tasks": 1, "n_runs": 1, "notes": ""})
    fig = F.interval_plot(pd.DataFrame(rows))
    FigureCanvasAgg(fig).draw()
    for ax in fig.axes:
        assert _inside(20.0, 70.0, ax.get_xlim(), margin=0.03), ax.get_xlim()
    title = _flat(fig._suptitle.get_text())
    assert "(1 task)" in title and "(1 tasks)" not in title
    poi = pd.DataFrame([{"algorithm": "mbdpo", "baseline": "sac", "value": 0.0, "low": 0.0, "high": 0.0,
                         "n_tasks": 1}])
    assert F.probability_of_improvement_plot(poi).axes[0].get_xlim()[0] < 0  # a P of 0 is not on the edge
    per_domain = pd.DataFrame({"algorithm": ["mbdpo", "sac"], "domain": ["DMControl"] * 2, "n_tasks": [2, 1],
                               "mean": [50.0, 40.0], "mean_low": [45.0, 40.0], "mean_high": [55.0, 40.0]})
    from analysis import tables

    assert tables.paper_domain_table(per_domain).loc[0, "SAC"].endswith("(1 task)")


# -------------------------------------------------------------------------------------------- 5. diagnostics

def test_an_absent_diagnostic_is_no_empty_panel():
    train = pd.DataFrame([{"algorithm": "mbdpo", "task": "cartpole-balance", "seed": 1, "step": s,
                           "cross_td_error": 1.0 / (1 + s), "behaviour_drift": np.nan} for s in (1000, 2000)])
    fig = F.diagnostics_curves(train)  # behaviour_drift all-NaN, td_error absent (below)
    check_readable("diagnostics", fig)
    td, drift = fig.axes[:2]
    assert td.axison and td.has_data()
    assert not drift.axison and not drift.has_data()  # no ticks on nothing ("0.0002k … 0.001k")
    assert "no 'behaviour_drift' in train.csv: not recorded by these runs" in _flat(drift.texts[0].get_text())
    nothing = F.diagnostics_curves(train, columns=("td_error", "behaviour_drift"))
    assert not [ax for ax in nothing.axes if ax.axison]
    assert "not recorded by these runs" in _flat(nothing.axes[0].texts[0].get_text())
    # steps below 1,000 read as numbers, not thousands
    formatter = td.xaxis.get_major_formatter()
    assert formatter(0.0002, 0) == "0.0002" and formatter(2000, 0) == "2k"


# --------------------------------------------------------------------------------------- 6. summary task sets

def test_summary_says_which_tasks_each_aggregate_row_uses(tmp_path):
    table = pd.concat([synthetic.curves(["mbdpo"], ["cartpole-balance"], seeds=(1, 2), points=3, seed=1),
                       synthetic.curves(["sac"], ["cartpole-balance", "walker-walk"], seeds=(1, 2), points=3, seed=2)])
    synthetic.write_runs(tmp_path / "runs", table)
    result = analyze(tmp_path / "out", runs=tmp_path / "runs", reps=REPS, per_task=False, claims=False)
    sac = result.per_domain[result.per_domain["algorithm"] == "sac"].set_index("domain")["n_tasks"]
    assert (sac["DMControl"], sac["All"]) == (2, 1)  # the situation of the issue: SAC on 2 tasks, All on 1
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "- **DMControl**: MBDPO: 1 task (cartpole-balance); SAC: 2 tasks (cartpole-balance, walker-walk)" \
        in summary
    assert "- **All**: 1 task, every algorithm: cartpole-balance — left out: SAC: walker-walk" in summary
    assert summary.count("**Common task set:**") == 1
    assert "compares every algorithm on the 1 task all algorithms have (cartpole-balance)" in summary
    sets = stats.aggregate_tasks(pd.DataFrame({"algorithm": ["a", "a", "b"], "task": ["t1", "t2", "t1"],
                                               "domain": "D", "seed": 1, "score": [1.0, 2.0, 3.0]}))
    row = sets[(sets["algorithm"] == "a") & (sets["domain"] == "All")].iloc[0]
    assert row["tasks"] == ("t1",) and row["left_out"] == ("t2",)
