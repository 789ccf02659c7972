"""The workflow on a real SLURM scheduler: a one-node cluster on localhost (Debian's slurm-wlm and munge), a tiny
config through `--executor slurm`, the run files and the analysis checked.

Slow-marked (it installs packages and starts daemons; ~1-2 min): `.venv/bin/python -m pytest -m slow
tests/test_slurm.py`. Needs root and apt (installs `slurm-wlm munge` when `slurmctld` is missing); it points
/etc/slurm/slurm.conf at a scratch config for the test's duration (the SLURM plugin clears SLURM_CONF inside jobs)
and restores what was there. Daemons are stopped by the PIDs they wrote, never by name.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
ETC_CONF = Path("/etc/slurm/slurm.conf")

pytestmark = pytest.mark.slow


def _run(*cmd: str, timeout: int = 300, check: bool = True, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, check=check, **kw)


def _install() -> None:
    if shutil.which("slurmctld") and shutil.which("munged"):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.fail("the SLURM test needs root and apt-get to install slurm-wlm and munge (or both preinstalled)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if _run("apt-get", "install", "-y", "-qq", "slurm-wlm", "munge", check=False, env=env).returncode != 0:
        _run("apt-get", "update", "-qq", env=env)
        _run("apt-get", "install", "-y", "-qq", "slurm-wlm", "munge", env=env)


def _slurm_conf(scratch: Path, host: str) -> str:
    mem_mb = int(next(line for line in Path("/proc/meminfo").read_text().splitlines()
                      if line.startswith("MemTotal")).split()[1]) // 1024 - 1024
    cpus = os.cpu_count() or 1
    return "\n".join([
        "ClusterName=mbdpo-test", f"SlurmctldHost={host}", "SlurmUser=root", "SlurmdUser=root",
        "AuthType=auth/munge", "CredType=cred/munge", "MpiDefault=none", "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none", "AccountingStorageType=accounting_storage/none", "JobAcctGatherType=jobacct_gather/none",
        "JobCompType=jobcomp/none", "SchedulerType=sched/backfill", "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core_Memory", "ReturnToService=2",
        f"StateSaveLocation={scratch}/spool/ctld", f"SlurmdSpoolDir={scratch}/spool/d",
        f"SlurmctldPidFile={scratch}/run/slurmctld.pid", f"SlurmdPidFile={scratch}/run/slurmd.pid",
        f"SlurmctldLogFile={scratch}/log/slurmctld.log", f"SlurmdLogFile={scratch}/log/slurmd.log",
        f"NodeName={host} CPUs={cpus} RealMemory={mem_mb} State=UNKNOWN",
        "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP", ""])


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    _install()
    scratch = tmp_path_factory.mktemp("slurm")
    for sub in ("spool/ctld", "spool/d", "run", "log"):
        (scratch / sub).mkdir(parents=True, exist_ok=True)
    host = socket.gethostname().split(".")[0]
    conf = scratch / "slurm.conf"
    conf.write_text(_slurm_conf(scratch, host))
    ETC_CONF.parent.mkdir(parents=True, exist_ok=True)
    backup = None
    if ETC_CONF.exists() or ETC_CONF.is_symlink():
        backup = scratch / "slurm.conf.orig"
        shutil.move(str(ETC_CONF), backup)
    ETC_CONF.symlink_to(conf)
    pids: list[int] = []
    try:
        Path("/run/munge").mkdir(parents=True, exist_ok=True)
        shutil.chown("/run/munge", "munge", "munge")
        if _run("pgrep", "-x", "munged", check=False).returncode != 0:
            _run("runuser", "-u", "munge", "--", "munged")
            munge_pid = Path("/run/munge/munged.pid")
            for _ in range(50):
                if munge_pid.exists() and munge_pid.read_text().strip():
                    pids.append(int(munge_pid.read_text()))
                    break
                time.sleep(0.1)
        _run("slurmctld")
        _run("slurmd")
        for name in ("slurmctld", "slurmd"):
            pid_file = scratch / "run" / f"{name}.pid"
            for _ in range(100):
                if pid_file.exists() and pid_file.read_text().strip():
                    break
                time.sleep(0.1)
            pids.append(int(pid_file.read_text()))
        deadline = time.time() + 60
        while time.time() < deadline:
            state = _run("sinfo", "-h", "-o", "%t", check=False).stdout.strip()
            if state in ("idle", "mix", "alloc"):
                break
            time.sleep(1)
        else:
            raise RuntimeError(f"the node did not come up: sinfo says {state!r}; "
                               f"{(scratch / 'log' / 'slurmctld.log').read_text()[-2000:]}")
        yield scratch
    finally:
        for pid in pids:
            try:
                os.kill(pid, 15)
            except ProcessLookupError:
                pass
        time.sleep(1)
        ETC_CONF.unlink(missing_ok=True)
        if backup is not None:
            shutil.move(str(backup), ETC_CONF)


def test_tiny_config_through_the_slurm_executor(cluster, tmp_path):
    config = {
        "results_dir": str(tmp_path / "results"), "device": "cpu", "gpu": False, "threads_per_run": 1,
        "experiments": [{"algorithms": ["sac"], "tasks": ["cartpole-balance"], "seeds": [1, 2], "steps": 1000,
                         "overrides": {"all": {"eval_every": 500, "eval_episodes": 1, "seed_steps": 200,
                                               "agent.batch_size": 32, "agent.hidden_dim": 32}}}],
        "sweeps": [],
        "analysis": {"out": str(tmp_path / "results" / "analysis"), "reps": 50, "per_task": False},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    start = time.time()
    proc = _run(sys.executable, "-m", "snakemake", "-s", str(ROOT / "workflow" / "Snakefile"), "-d", str(tmp_path),
                "--executor", "slurm", "--jobs", "4", "--configfile", str(path), "--slurm-status-command", "squeue",
                "--slurm-init-seconds-before-status-checks", "5", "--default-resources", "slurm_partition=debug",
                "--latency-wait", "10", timeout=900, check=False, cwd=str(ROOT))
    elapsed = time.time() - start
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    log = proc.stdout + proc.stderr
    assert "SLURM" in log or "slurm" in log  # the jobs went through the scheduler
    results = tmp_path / "results"
    for seed in (1, 2):
        run_dir = results / "runs" / "sac" / "cartpole-balance" / str(seed)
        marker = json.loads((run_dir / "complete.json").read_text())
        info = json.loads((run_dir / "run.json").read_text())
        assert marker["status"] == info["status"] == "finished" and info["env_steps_done"] == 1000
        assert info.get("slurm_job_id"), "run.json should record the SLURM job that ran it"
    assert (results / "analysis" / "tables" / "per_domain.csv").read_text().startswith("algorithm,domain")
    assert (results / "analysis" / "figures" / "aggregate_curves.png").read_bytes()[:4] == b"\x89PNG"
    print(f"SLURM workflow: {elapsed:.1f} s")  # noted in workflow/README.md
