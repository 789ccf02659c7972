"""Snakemake job: the analysis of the config's runs (and released curves when configured), the claims ledger first."""

import contextlib
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from analysis.report import analyze


def main(snakemake) -> None:
    sys.path.insert(0, str(Path(snakemake.scriptdir)))
    import plan  # the cost model of the claims ledger's estimates

    p = snakemake.params
    with open(snakemake.log[0], "w") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        analyze(p.out, runs=p.runs, published=p.published or None, at_step=p.at_step, candidate=p.candidate,
                reps=p.reps, seed=p.seed, per_task=p.per_task, expected=[tuple(k) for k in p.expected],
                step_units=dict(p.step_units), efficiency=p.efficiency, scale=p.scale or None, note=p.note or None,
                cost=plan)


main(snakemake)  # noqa: F821 - defined by Snakemake's script directive
