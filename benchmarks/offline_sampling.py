"""Offline sampling: sub-trajectories per second from the memory-mapped cache against reading the Minari files.

A synthetic multi-task dataset (``--tasks`` tasks of different observation/action sizes, ``--episodes`` episodes
of ``--length`` steps each; random values, no simulator) is written in the native format (offline/dataset.py)
into a temporary folder, and its cache is built. Then two readers draw batches of ``--batch`` sub-trajectories of
``--horizon`` steps (H+1 observations, H actions and rewards), side by side in alternating blocks (the order flips
every block, so machine noise hits both alike):

* ``cache``: ``DatasetCache.sample(batch, horizon)`` (what offline training does: fancy indexing into the
  memory-mapped arrays, padded to the largest task);
* ``minari``: for each of the batch's sub-trajectories, a uniformly drawn (task, episode, start) read through
  Minari's own API, ``minari.load_dataset(...)[episode]`` (one HDF5 read of the episode), then sliced: what a
  trainer that read the Minari files per sample would pay.

It prints ``cache_samples_per_s`` and ``minari_samples_per_s`` (sub-trajectories per second, medians over blocks
with quartiles) and ``speedup`` = cache / minari (median of per-block ratios).

    python benchmarks/offline_sampling.py                      # 3 tasks x 20 episodes x 500 steps, batch 256, H 3
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's packages, even beside another install

from _common import emit, log, median, quartiles

BENCHMARK = "offline_sampling"
SIZES = [(5, 1), (17, 6), (24, 6), (6, 2), (15, 4), (67, 21)]  # obs/action sizes of DMControl tasks
NAMES = ["cartpole-balance", "cheetah-run", "walker-walk", "reacher-easy", "hopper-hop", "humanoid-run"]


def make_dataset(root: Path, tasks: int, episodes: int, length: int, seed: int) -> Path:
    from offline.dataset import Episode
    from offline.writer import write_dataset

    rng = np.random.default_rng(seed)
    names, sizes = NAMES[:tasks], SIZES[:tasks]
    data = {name: [Episode(rng.standard_normal((length + 1, obs)), rng.uniform(-1, 1, (length, act)),
                           rng.uniform(0, 1, length), np.zeros(length, bool)) for _ in range(episodes)]
            for name, (obs, act) in zip(names, sizes)}
    path = root / "dataset"
    write_dataset(path, names, [s[0] for s in sizes], [s[1] for s in sizes], data, source="synthetic")
    return path


class MinariReader:
    """Sub-trajectories read per sample through Minari: uniform over (task, episode, valid start)."""

    def __init__(self, path: Path, seed: int):
        import minari

        from offline.dataset import MINARI_DIR, minari_root, read_manifest

        manifest = read_manifest(path)
        with minari_root(path / MINARI_DIR):
            self.datasets = [minari.load_dataset(i) for i in manifest["minari_ids"] if i is not None]
        self.rng = np.random.default_rng(seed)

    def sample(self, batch: int, horizon: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        out = []
        for _ in range(batch):
            dataset = self.datasets[self.rng.integers(len(self.datasets))]
            episode = dataset[int(self.rng.integers(dataset.total_episodes))]
            start = int(self.rng.integers(len(episode.rewards) - horizon + 1))
            out.append((episode.observations[start:start + horizon + 1], episode.actions[start:start + horizon],
                        episode.rewards[start:start + horizon]))
        return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=3, help=f"tasks (at most {len(SIZES)})")
    parser.add_argument("--episodes", type=int, default=20, help="episodes per task")
    parser.add_argument("--length", type=int, default=500, help="steps per episode")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--horizon", type=int, default=3)
    parser.add_argument("--steps", type=int, default=4, help="timed batches per block and reader")
    parser.add_argument("--repeats", type=int, default=6, help="blocks per reader")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not 1 <= args.tasks <= len(SIZES):
        parser.error(f"--tasks must be in 1..{len(SIZES)}, got {args.tasks}")
    if min(args.episodes, args.batch, args.horizon, args.steps, args.repeats) <= 0 or args.length <= args.horizon:
        parser.error("sizes must be positive and --length larger than --horizon")

    from offline.cache import open_dataset

    root = Path(tempfile.mkdtemp(prefix="offline_sampling-"))
    try:
        log(f"[{BENCHMARK}] writing {args.tasks} x {args.episodes} episodes of {args.length} steps")
        path = make_dataset(root, args.tasks, args.episodes, args.length, args.seed)
        tic = time.perf_counter()
        cache = open_dataset(path, seed=args.seed)
        build_s = time.perf_counter() - tic
        minari_reader = MinariReader(path, args.seed)
        readers = {"cache": lambda: cache.sample(args.batch, args.horizon),
                   "minari": lambda: minari_reader.sample(args.batch, args.horizon)}
        for read in readers.values():  # warm-up: page cache, HDF5 metadata
            read()
        rates: dict[str, list[float]] = {name: [] for name in readers}
        for block in range(args.repeats):
            order = list(readers) if block % 2 == 0 else list(readers)[::-1]
            for name in order:
                tic = time.perf_counter()
                for _ in range(args.steps):
                    readers[name]()
                rates[name].append(args.steps * args.batch / (time.perf_counter() - tic))
            log(f"[{BENCHMARK}] block {block}: cache {rates['cache'][-1]:.0f}/s, minari {rates['minari'][-1]:.0f}/s")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    context = {"task": ",".join(NAMES[:args.tasks]), "steps": args.steps, "repeats": args.repeats, "device": "cpu",
               "torch_threads": 0, "batch": args.batch, "horizon": args.horizon,
               "transitions": args.tasks * args.episodes * args.length, "statistic": "median over blocks"}
    for name in readers:
        q1, q3 = quartiles(rates[name])
        emit(BENCHMARK, f"{name}_samples_per_s", round(median(rates[name]), 1), "sub-trajectories/s",
             p25=round(q1, 1), p75=round(q3, 1), **context)
    ratios = [c / m for c, m in zip(rates["cache"], rates["minari"])]
    q1, q3 = quartiles(ratios)
    emit(BENCHMARK, "speedup", round(median(ratios), 2), "x", p25=round(q1, 2), p75=round(q3, 2),
         cache_build_s=round(build_s, 3), **context)


if __name__ == "__main__":
    main()
