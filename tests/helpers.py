"""Test helpers shared by several test modules."""

from __future__ import annotations

import json
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


def assert_resumes_bit_for_bit(train_args: list[str], tmp_path: Path, run_subdir: str, capsys) -> Path:
    """Run ``train_args`` twice; interrupt the second after its 2000-step checkpoint (drop the final one and
    mark it running, as a kill would leave it), resume, and compare eval.csv with the first. Returns the
    reference run folder."""
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
    return reference
