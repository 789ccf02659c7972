"""The main job ends by naming the claims ledger (issue 23) and summary.md (issue 18): the workflow's ``onsuccess`` handler, without running a job."""

from __future__ import annotations

import sys

from tests.test_workflow import ROOT, snakemake, tiny_config

sys.path.insert(0, str(ROOT / "workflow" / "scripts"))
import plan  # noqa: E402


def test_finished_message_names_summary_and_report(tmp_path):
    out, results = tmp_path / "results" / "analysis", tmp_path / "results"
    message = plan.finished_message(out, results)
    assert "no analysis summary" in message and f"snakemake --report {results / 'report.html'}" in message
    out.mkdir(parents=True)
    (out / "summary.md").write_text("# Analysis summary\n")
    (results / "report.html").write_text("<html/>")
    message = plan.finished_message(out, results)
    assert f"Analysis summary: {(out / 'summary.md').resolve()}" in message
    assert f"HTML report: {(results / 'report.html').resolve()}" in message


def test_a_finished_workflow_prints_where_summary_md_is(tmp_path):
    """The run already there (synthetic run files and its completion marker): snakemake runs only the analysis job,
    then its onsuccess handler names summary.md by its absolute path."""
    from analysis import synthetic

    path = tiny_config(tmp_path)
    results = tmp_path / "results"
    synthetic.write_runs(results / "runs", synthetic.curves(["sac"], ["cartpole-balance"], seeds=(1,), points=3))
    (results / "runs" / "sac" / "cartpole-balance" / "1" / plan.COMPLETE_MARKER).write_text("{}")
    proc = snakemake(tmp_path, "--cores", "1", "--configfile", str(path), timeout=300)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text[-3000:]
    assert "rule analyze" in text and "rule train" not in text  # only the analysis ran
    summary = results / "analysis" / "summary.md"
    assert summary.read_text().startswith("# Analysis summary")
    assert f"Analysis summary: {summary.resolve()}" in proc.stdout, text[-3000:]
    # the claims ledger comes first, with a verdict for every claim (issue 23)
    ledger = results / "analysis" / "claims.md"
    assert proc.stdout.index(f"Claims ledger (a verdict for each claim of the paper): {ledger.resolve()}") < \
        proc.stdout.index("Analysis summary:")
    assert "C1 online lead" in proc.stdout and "C10 diffusion steps T and samples N" in proc.stdout
    assert "not tested" in proc.stdout  # SAC alone: no MBDPO to compare
    assert summary.read_text().index("## Claims of the paper") < summary.read_text().index("## Step units")
    # the main job builds the HTML report itself and names it
    report = results / "report.html"
    assert report.exists() and report.stat().st_size > 10_000, text[-3000:]
    assert f"HTML report: {report.resolve()}" in proc.stdout
