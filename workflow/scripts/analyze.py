"""Snakemake job: the analysis of the config's runs (and released curves when configured)."""

import contextlib

import matplotlib

matplotlib.use("Agg")

from analysis.report import analyze


def main(snakemake) -> None:
    p = snakemake.params
    with open(snakemake.log[0], "w") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        analyze(p.out, runs=p.runs, published=p.published or None, at_step=p.at_step, candidate=p.candidate,
                reps=p.reps, seed=p.seed, per_task=p.per_task, expected=[tuple(k) for k in p.expected],
                step_units=dict(p.step_units), efficiency=p.efficiency, scale=p.scale or None, note=p.note or None)


main(snakemake)  # noqa: F821 - defined by Snakemake's script directive
