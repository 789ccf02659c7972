"""D14 on a GPU: ours against the released code on CUDA, as the released trainers ran it (TF32 matmuls on).

Not a pytest module (it needs CUDA): ``python -m tests.differential.cuda_numerics [--out FILE]`` on a machine with a
GPU, the released code at ``MBDPO_RELEASED_CODE`` (or ../shared/reference/released-code) and the test extras
installed. For MBDPO and TD-MPC2 (1.7M, cheetah-run, light planning as in test_agents.py), with identical weights
and replayed random draws, it compares the released code run unmodified on ``cuda:0`` with TF32 on against ours
with ``precision=tf32`` (our CUDA default) and ``precision=fp32``: encoder and Q logits, one update's losses and
gradient norm, and a chain of 4 warm-started plans. One JSON line per (algorithm, our precision, quantity) with
the max |ours − released|; on a CPU it stops with one line saying it needs CUDA.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from tests.differential import agents as A
from tests.differential.test_agents import LIGHT


def _tf32(on: bool) -> None:
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = on


def compare(algo: str, precision: str, workdir: Path, device: str = "cuda") -> list[dict]:
    light, released_light = LIGHT[algo]
    pair = A.build_pair(algo, "cheetah-run", workdir, {**released_light, "dropout": 0.0}, device=device,
                        precision=precision, compute="reference", dropout=0.0, **light)
    rows = []

    def row(quantity: str, ours, theirs) -> None:
        ours, theirs = torch.as_tensor(ours).float().cpu(), torch.as_tensor(theirs).float().cpu()
        rows.append({"algo": algo, "our_precision": precision, "released": "cuda, TF32 on", "quantity": quantity,
                     "max_abs_diff": float((ours - theirs).abs().max())})

    g = torch.Generator().manual_seed(1)
    obs = torch.randn(64, pair.obs_dim, generator=g).to(device)
    action = (torch.rand(64, pair.action_dim, generator=g) * 2 - 1).to(device)
    with torch.no_grad():
        _tf32(False)
        with pair.ours.autocast():
            z = pair.ours.model.encode(obs)
            q = pair.ours.model.Q(z, action, return_type="all")
        _tf32(True)  # the released trainer's setting
        z_ref = pair.theirs.model.encode(obs, None)
        q_ref = pair.theirs.model.Q(z_ref, action, None, return_type="all")
    row("encode", z, z_ref)
    row("Q logits", q, q_ref)

    ours_batch, theirs_batch = A.sample_batch(pair, pair.ours.cfg.batch_size)
    theirs_batch = tuple(t.to(device) for t in theirs_batch)
    replay = A.RandomReplay()
    _tf32(False)
    with replay.recording():
        mine = pair.ours.update(ours_batch)
    _tf32(True)
    with replay.replaying():
        released = {k: float(v) for k, v in pair.theirs._update(*theirs_batch).items()}
    for key in sorted(set(mine) & set(released)):
        row(f"update: {key}", mine[key], released[key])

    rng = np.random.default_rng(0)
    pair.ours.reset()
    moves = []
    for step in range(4):
        observation = rng.standard_normal(pair.obs_dim).astype(np.float32)
        replay = A.RandomReplay()
        _tf32(False)
        with replay.recording():
            act = pair.ours.act(observation, True)
        _tf32(True)
        with replay.replaying():
            act_ref = pair.theirs.act(torch.as_tensor(observation), t0=step == 0, eval_mode=True)
        moves.append(float(np.abs(np.asarray(act) - act_ref.cpu().numpy()).max()))
    rows.append({"algo": algo, "our_precision": precision, "released": "cuda, TF32 on",
                 "quantity": "act (4 warm-started plans)", "max_abs_diff": max(moves)})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="also write the JSON lines here")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("cuda_numerics: needs a CUDA device (this machine has none); the CPU comparisons are "
              "tests/differential/test_agents.py", file=sys.stderr)
        return 2
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for algo in ("tdmpc2", "mbdpo"):
            for precision in ("tf32", "fp32"):
                rows += compare(algo, precision, Path(tmp) / f"{algo}-{precision}")
    lines = [json.dumps(r) for r in rows]
    print("\n".join(lines))
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
