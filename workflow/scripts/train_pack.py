"""Snakemake job: train the runs of one pack side by side on one GPU (rule train_pack, config key runs_per_gpu).

Each member is its own trainer process (``python -m algorithms.cli train``, with the overrides train.py gives one
run) writing to its own log, as its own job would. Once all have exited, each member whose run.json says finished
gets its own complete.json exactly as train.py writes it, then the pack gets its marker (members, status, wall
times); if any member did not finish, the job fails naming each such run and its log, and its next attempt
resumes those runs (the finished ones are already done). SIGTERM (a scheduler's time limit) is passed on to every
member, which marks its run interrupted.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def main(snakemake) -> None:
    sys.path.insert(0, str(Path(snakemake.scriptdir)))
    import runjob

    p = snakemake.params
    Path(snakemake.log[0]).parent.mkdir(parents=True, exist_ok=True)
    with open(snakemake.log[0], "a") as log:
        problem = train_pack(p.pack, p.members, p.results_dir, p.device, snakemake.threads,
                             Path(snakemake.output[0]), log, runjob, Path(snakemake.scriptdir).parents[1])
    if problem:
        raise SystemExit(problem)


def member_threads(members: list[dict], job_threads: int) -> list[int]:
    """Each member's own threads; where the job got fewer cores than their sum (a local --cores below it), an equal
    share of the job's, at least one."""
    wanted = [int(m["threads"]) for m in members]
    if sum(wanted) <= job_threads:
        return wanted
    return [max(1, min(w, job_threads // len(members))) for w in wanted]


def train_pack(pack: str, members: list[dict], results_dir: str, device: str, job_threads: int, marker: Path, log,
               runjob, repo: Path) -> str | None:
    """Train every member concurrently, write the markers; returns None, or the message of the members that did
    not finish."""
    from algorithms.common.runfiles import atomic_write_json

    env = dict(os.environ)
    if (repo / "algorithms").is_dir():  # the trainer of this workflow's own checkout, as train.py's
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(repo), env.get("PYTHONPATH")]))
    runs = [runjob.run_from_params(m) for m in members]
    procs: list[subprocess.Popen] = []
    started: list[float] = []
    forwarded: set[int] = set()

    def forward(signum, frame):  # noqa: ARG001 - a scheduler's SIGTERM: every member marks its run interrupted
        print(f"{time.strftime('%H:%M:%S')} signal {signum}: passed on to the pack's runs", file=log, flush=True)
        for proc in procs:
            if proc.poll() is None and proc.pid not in forwarded:
                forwarded.add(proc.pid)
                proc.send_signal(signal.SIGTERM)

    previous = signal.signal(signal.SIGTERM, forward)
    try:
        for run, member, threads in zip(runs, members, member_threads(members, job_threads)):
            overrides = runjob.trainer_overrides(run, results_dir, device, threads)
            Path(member["log"]).parent.mkdir(parents=True, exist_ok=True)
            with open(member["log"], "a") as out:  # the child holds its own copy of the file
                procs.append(subprocess.Popen(runjob.trainer_command(sys.executable, run, overrides), stdout=out,
                                              stderr=subprocess.STDOUT, env=env))
            started.append(time.time())
            print(f"{time.strftime('%H:%M:%S')} started {run.key} (pid {procs[-1].pid}, {threads} thread(s)), "
                  f"log {member['log']}", file=log, flush=True)
            if forwarded:  # SIGTERM arrived while starting: this one stops too
                forward(signal.SIGTERM, None)
    except BaseException:  # the pack itself failed to start them all: stop the ones that run, then say why
        forward(signal.SIGTERM, None)
        for proc in procs:
            proc.wait()
        signal.signal(signal.SIGTERM, previous)
        raise
    codes: list[int | None] = [None] * len(procs)
    walls: list[float] = [0.0] * len(procs)
    try:
        while None in codes:  # each member's own wall time: poll them all (a signal meanwhile is handled, PEP 475)
            for i, proc in enumerate(procs):
                if codes[i] is None and proc.poll() is not None:
                    codes[i], walls[i] = proc.returncode, round(time.time() - started[i], 1)
                    print(f"{time.strftime('%H:%M:%S')} {runs[i].key} exited with {codes[i]} after {walls[i]} s",
                          file=log, flush=True)
            if None in codes:
                time.sleep(1.0)
    finally:
        signal.signal(signal.SIGTERM, previous)
    summary, failed = [], []
    for run, member, code, wall in zip(runs, members, codes, walls):
        info = runjob.run_info(runjob.run_dir(run, results_dir))
        status = info.get("status")
        if code == 0 and status == "finished":
            runjob.write_marker(Path(member["marker"]), run, info)
        else:
            failed.append(f"{run.key} (exit {code}, status {status!r}; log {member['log']})")
        summary.append({"run": run.key, "status": status, "exit_code": code, "process_wall_time_s": wall,
                        "wall_time_s": info.get("wall_time_s")})
    if failed:
        message = (f"{pack}: {len(failed)} of {len(runs)} run(s) did not finish: " + "; ".join(failed)
                   + ". The finished runs have their complete.json; run the workflow again to resume the others.")
        print(message, file=log, flush=True)
        return message
    atomic_write_json(marker, {"pack": pack, "members": summary, "wall_time_s": max(walls) if walls else 0.0})
    return None


if "snakemake" in globals():  # a Snakemake job; the tests import train_pack
    main(snakemake)  # noqa: F821 - defined by Snakemake's script directive
