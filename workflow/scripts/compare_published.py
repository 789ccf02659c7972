"""Snakemake job: our runs of a validation config beside the released curves (analysis.validate)."""

import contextlib

from analysis.load import load_published
from analysis.report import gather
from analysis.tables import write_table
from analysis.validate import compare_to_published


def main(snakemake) -> None:
    p = snakemake.params
    with open(snakemake.log[0], "w") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        ours = gather(runs=p.runs, expected=[tuple(k) for k in p.expected]).evals
        # Released steps become env steps per folder unit (analysis/units.py, FIDELITY.md D1; validate.step_units)
        published = load_published(p.published, sorted(ours["algorithm"].unique()), dict(p.step_units)).evals
        table = compare_to_published(ours, published, p.at_steps, p.margin)
        stem = snakemake.output[0].removesuffix(".csv")
        write_table(table, stem, "Our runs beside the released curves (normalised score)")
        print(table.to_string(index=False))


main(snakemake)  # noqa: F821 - defined by Snakemake's script directive
