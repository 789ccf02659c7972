"""Every figure the default analysis writes is readable (issue 18): each axis that shows data has an x and a y
label, the legend lies inside the figure (a one-domain figure used to cut MBDPO to "PO"), and the diagnostics
are drawn on a scale that shows what they measure."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from analysis import figures as F
from analysis import report, synthetic
from analysis.report import analyze

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")
REPS = 50
ONE_DOMAIN = ["cartpole-balance", "reacher-easy"]  # the embedded default's tasks
SEVERAL = ["cartpole-balance", "walker-walk", "mw-assembly", "myo-reach", "cheetah-run-pixels"]
ALGORITHMS = ["mbdpo", "tdmpc2", "dreamerv3", "sac"]


def analysed(tmp_path, monkeypatch, tasks, **options) -> dict[str, object]:
    """Run the analysis on synthetic runs of ``tasks``; return {file name: Figure} of every figure it saved."""
    table = synthetic.curves(ALGORITHMS, tasks, seeds=(1, 2), points=5, seed=7)
    synthetic.write_runs(tmp_path / "runs", table)
    # drift logged in the units of a real default run (1e5-1e6) next to small values: spans decades
    for i, path in enumerate(sorted((tmp_path / "runs").glob("*/*/*/train.csv"))):
        train = pd.read_csv(path)
        train["cross_td_error"] *= 10.0 ** (i % 6)
        train.to_csv(path, index=False)
    figures = {}
    save = F.save

    def keep(fig, path, *args, **kwargs):
        figures[path.name] = fig
        return save(fig, path, *args, **kwargs)

    monkeypatch.setattr(report.F, "save", keep)
    analyze(tmp_path / "out", runs=tmp_path / "runs", reps=REPS, **options)
    return figures


def check_readable(name: str, fig) -> None:
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    box = fig.bbox
    supy = fig._supylabel.get_text() if getattr(fig, "_supylabel", None) else ""
    shown = [ax for ax in fig.axes if ax.get_visible() and ax.axison and ax.has_data()]
    assert shown, f"{name}: no axis shows data"
    for ax in shown:
        where = f"{name}, panel {ax.get_title()!r}"
        assert ax.get_xlabel().strip(), f"{where}: no x label"
        assert ax.get_ylabel().strip() or supy.strip(), f"{where}: no y label"
    texts = [fig._suptitle, fig._supxlabel, fig._supylabel, *fig.texts, *[lg.get_title() for lg in fig.legends],
             *[label for ax in shown for label in (ax.xaxis.label, ax.yaxis.label, ax.title)]]
    for text in texts:
        if text is not None and text.get_visible() and text.get_text().strip():
            t = text.get_window_extent(renderer)
            assert t.x0 >= box.x0 - 1 and t.x1 <= box.x1 + 1 and t.y0 >= box.y0 - 1 and t.y1 <= box.y1 + 1, \
                f"{name}: text {text.get_text()!r} runs off the figure"
    legends = [*fig.legends, *[ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]]
    for legend in legends:
        ext = legend.get_window_extent(renderer)
        assert ext.x0 >= box.x0 - 1 and ext.x1 <= box.x1 + 1 and ext.y0 >= box.y0 - 1 and ext.y1 <= box.y1 + 1, \
            f"{name}: legend {ext} outside the figure {box}"
        for text in texts:  # nor does it cover a title, a caption or an axis label
            if text is not None and text is not legend.get_title() and text.get_visible() and text.get_text().strip():
                assert not ext.overlaps(text.get_window_extent(renderer)), \
                    f"{name}: legend covers {text.get_text()!r}"
        for text in legend.get_texts():
            t = text.get_window_extent(renderer)
            assert t.x0 >= box.x0 - 1 and t.x1 <= box.x1 + 1, f"{name}: legend entry {text.get_text()!r} cut off"


@pytest.mark.parametrize("tasks", [ONE_DOMAIN, SEVERAL], ids=["one-domain", "several-domains"])
def test_every_figure_is_labelled_and_its_legend_fits(tmp_path, monkeypatch, tasks):
    figures = analysed(tmp_path, monkeypatch, tasks)
    assert {"aggregate_curves.png", "diagnostics.png", "interval_estimates.png", "performance_profiles.png",
            "probability_of_improvement.png"} <= set(figures)
    assert any(n.startswith("per_task_") for n in figures)
    for name, fig in figures.items():
        check_readable(name, fig)
    legend = figures["aggregate_curves.png"].legends[0]
    assert {t.get_text() for t in legend.get_texts()} == {"MBDPO", "TD-MPC2", "DreamerV3", "SAC"}


def test_one_panel_legend_would_have_been_cut_at_six_columns():
    """The check above can fail: the old one-row legend of a one-panel figure is wider than the figure."""
    curves = pd.DataFrame([{"algorithm": a, "domain": "DMControl", "step": s, "value": 50.0, "low": 40.0,
                            "high": 60.0, "n_tasks": 2} for a in ALGORITHMS for s in (0, 1000)])
    fig = F.aggregate_curves(curves)
    check_readable("aggregate_curves", fig)
    fig.legends[0].remove()
    fig.legend(*fig.axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=4, frameon=False)
    with pytest.raises(AssertionError, match="outside the figure|cut off"):
        check_readable("aggregate_curves (one row)", fig)


def test_diagnostics_show_what_they_measure():
    rows = []
    for alg, scale in (("mbdpo", 1e6), ("tdmpc2", 1.0)):
        for seed, jitter in ((1, 0.2), (2, 1.8)):
            for step in (1000, 2000, 3000):
                rows.append({"algorithm": alg, "task": "cartpole-balance", "seed": seed, "step": step,
                             "cross_td_error": scale * jitter, "behaviour_drift": 0.1 * jitter})
    fig = F.diagnostics_curves(pd.DataFrame(rows))
    FigureCanvasAgg(fig).draw()
    td, drift = fig.axes[:2]
    assert td.get_yscale() == "log" and "log scale" in td.get_ylabel()  # 0.2 … 1.8e6: six decades
    assert "TD error" in td.get_ylabel()
    assert drift.get_yscale() == "linear" and "RMS action difference" in drift.get_ylabel()
    assert drift.get_ylim()[0] >= 0  # the ±1 std band (0.1 ± 0.11) is cut at 0, not drawn below it
    for ax in (td, drift):
        for band in ax.collections:
            ys = np.concatenate([p.vertices[:, 1] for p in band.get_paths()])
            assert ys.min() >= 0, f"{ax.get_ylabel()}: band below 0"


def test_smoke_scale_says_so_on_the_summary_and_every_figure(tmp_path, monkeypatch):
    figures = analysed(tmp_path, monkeypatch, ONE_DOMAIN, scale="smoke")
    assert len(figures) >= 6
    for name, fig in figures.items():
        title = fig._suptitle.get_text() if fig._suptitle is not None else ""
        heads = [title, *[legend.get_title().get_text() for legend in fig.legends]]
        assert any(h.replace("\n", " ").startswith("smoke scale: not comparable to the paper's numbers")
                   for h in heads), name
        check_readable(name, fig)  # the banner fits and no legend covers it
    interval = figures["interval_estimates.png"]._suptitle.get_text()
    assert "aggregate metrics" in interval  # a figure's own title is kept under the banner
    summary = (tmp_path / "out" / "summary.md").read_text().splitlines()
    assert summary[0] == "# Analysis summary"
    assert "smoke scale: not comparable to the paper's numbers" in summary[2].lower()


def test_paper_scale_and_no_scale_add_no_banner(tmp_path, monkeypatch):
    figures = analysed(tmp_path, monkeypatch, ONE_DOMAIN, scale="paper")
    assert not any("smoke" in (f._suptitle.get_text() if f._suptitle else "") for f in figures.values())
    assert "smoke" not in (tmp_path / "out" / "summary.md").read_text().lower()


def test_the_embedded_default_is_analysed_as_smoke_scale_and_the_cli_passes_it(tmp_path):
    import yaml

    from algorithms.cli import main
    from tests.test_workflow import ROOT

    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    assert config["analysis"]["scale"] == "smoke"
    smk = (ROOT / "workflow" / "rules" / "analysis.smk").read_text()
    script = (ROOT / "workflow" / "scripts" / "analyze.py").read_text()
    assert 'scale=ANALYSIS.get("scale")' in smk and "scale=p.scale" in script
    table = synthetic.curves(["mbdpo", "sac"], ONE_DOMAIN, seeds=(1,), points=3, seed=1)
    synthetic.write_runs(tmp_path / "runs", table)
    rc = main(["analyze", "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "out"), "--reps", "20",
               "--scale", "smoke", "--note", "CPU check of 2024-05-01"])
    assert rc == 0
    banner = (tmp_path / "out" / "summary.md").read_text().splitlines()[2]
    assert "smoke scale" in banner.lower() and "CPU check of 2024-05-01" in banner
