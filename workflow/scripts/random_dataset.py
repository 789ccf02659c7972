"""Snakemake job: write an offline dataset of random-action episodes (offline/random_data.py), the pretraining
data of config/o2o-smoke.yaml."""

import sys
from pathlib import Path


def main(snakemake) -> None:
    sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))
    from offline.random_data import write_random_dataset

    p = snakemake.params
    write_random_dataset(snakemake.output[0], list(p.tasks), int(p.episodes), int(p.seed))


main(snakemake)  # noqa: F821 - defined by Snakemake's script directive
