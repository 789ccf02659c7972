"""Learning checks: real training runs, minutes each on CPU. Not in CI's default run: `pytest -m slow`."""

import csv

import pytest

from algorithms.cli import main


@pytest.mark.slow
def test_sac_learns_cartpole_balance(tmp_path):
    """SAC with its defaults reaches eval return >= 800 within 100k env steps (published SAC: ~998 at 100k)."""
    args = ["train", "--algo", "sac", "--task", "cartpole-balance", "--seed", "1", "--steps", "100000",
            "--results-dir", str(tmp_path), "eval_every=10000", "progress=false"]
    assert main(args) == 0
    rows = list(csv.DictReader(open(tmp_path / "runs/sac/cartpole-balance/1/eval.csv")))
    returns = {int(r["step"]): float(r["episode_return"]) for r in rows}
    assert max(returns.values()) >= 800, returns
    assert returns[0] < 500  # the random-init policy does not already balance
