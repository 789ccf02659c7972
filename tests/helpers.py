"""Test helpers shared by several test modules."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import torch

from algorithms.cli import main


class QuadraticModel:
    """A toy 'world model' with identity dynamics and reward r(z, a) = -|a - target|²; no terminal value; the
    policy prior proposes uniform random actions. A sequence's return is maximised by a_t = target."""

    action_dim, multitask = 2, False

    def __init__(self, target: torch.Tensor):
        self.target = target

    def reward_value(self, z, a, task=None):
        return -(a - self.target).pow(2).sum(-1, keepdim=True)

    def next(self, z, a, task=None):
        return z

    def Q(self, z, a, task=None, return_type="avg", **kwargs):
        return torch.zeros(*z.shape[:-1], 1)

    def pi(self, z, task=None):
        return SimpleNamespace(action=torch.rand(*z.shape[:-1], 2) * 2 - 1)


WALL_TIME_COLUMNS = ("wall_time_s", "env_steps_per_s", "update_ms", "act_ms")
"""train.csv columns that measure time, the only ones a resumed run may change."""


def train_rows_without_wall_time(path: Path) -> list[dict[str, str]]:
    """train.csv's rows (with its column order) minus the wall-time columns."""
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        rows = [{k: v for k, v in row.items() if k not in WALL_TIME_COLUMNS} for row in reader]
    return [{"columns": ",".join(c for c in reader.fieldnames or [] if c not in WALL_TIME_COLUMNS)}, *rows]


def assert_resumes_bit_for_bit(train_args: list[str], tmp_path: Path, run_subdir: str, capsys,
                               compare_train: bool = False) -> Path:
    """Run ``train_args`` twice; interrupt the second after its 2000-step checkpoint (drop the final one and
    mark it running, as a kill would leave it), resume, and compare eval.csv with the first (and, with
    ``compare_train``, train.csv minus its wall-time columns). Returns the reference run folder."""
    assert main([*train_args, "--results-dir", str(tmp_path / "a")]) == 0
    assert main([*train_args, "--results-dir", str(tmp_path / "b")]) == 0
    reference, run = tmp_path / "a" / run_subdir, tmp_path / "b" / run_subdir
    for suffix in (".pt", ".sha256"):
        (run / "checkpoints" / f"step_0000003000{suffix}").unlink()
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**info, "status": "running"}))
    capsys.readouterr()
    assert main([*train_args, "--results-dir", str(tmp_path / "b")]) == 0
    assert "resuming from" in capsys.readouterr().err
    assert (run / "eval.csv").read_bytes() == (reference / "eval.csv").read_bytes()
    if compare_train:
        assert train_rows_without_wall_time(run / "train.csv") == \
            train_rows_without_wall_time(reference / "train.csv")
    return reference


@contextlib.contextmanager
def plugin_sites(monkeypatch) -> Iterator[Callable[[Path], None]]:
    """``activate(site)`` puts a folder of installed plug-ins on sys.path (and PYTHONPATH, for subprocesses such as
    Snakemake's jobs) and makes the registries find plug-ins again; on leaving, they forget them and the modules
    imported from there (the `new-algorithm` packages ``mbdpo_bench_*``, the fake ones ``pl_*``)."""
    from algorithms.registry import clear_plugin_cache

    root = str(Path(__file__).resolve().parents[1])

    def activate(site: Path) -> None:
        monkeypatch.syspath_prepend(str(site))
        monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site), root]))
        clear_plugin_cache()

    try:
        yield activate
    finally:
        clear_plugin_cache()  # found again on next use, after monkeypatch restored sys.path and PYTHONPATH
        for name in [m for m in sys.modules if m.startswith(("mbdpo_bench_", "pl_"))]:
            del sys.modules[name]
