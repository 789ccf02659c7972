"""One run's life cycle: run files, resume bit for bit after SIGKILL/SIGTERM, corrupt checkpoints, bad input."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from algorithms.cli import main
from algorithms.common import online_loop as trainer_module
from algorithms.common.checkpoint import CheckpointError, CheckpointManager
from algorithms.common.health import floating_tensors

ROOT = Path(__file__).resolve().parents[1]


def run_dir_of(args: list[str]) -> Path:
    results = Path(args[args.index("--results-dir") + 1])
    return results / "runs" / "sac" / "cartpole-balance" / "3"


def with_results(args: list[str], results: Path) -> list[str]:
    args = list(args)
    args[args.index("--results-dir") + 1] = str(results)
    return args


def cli(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "algorithms.cli", "train", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def without_cost_line(err: str) -> str:
    """stderr less the cost estimate a CPU run prints after its first steps (issue 18): the line asserted is the
    error's."""
    return "".join(line for line in err.splitlines(keepends=True) if not line.startswith("cost on "))


def wait_for(path_glob: Path, pattern: str, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if list(path_glob.glob(pattern)):
            return
        time.sleep(0.05)
    raise TimeoutError(f"no {pattern} under {path_glob} after {timeout} s")


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    """The uninterrupted run every resumed run is compared with."""
    results = tmp_path_factory.mktemp("reference")
    args = ["--algo", "sac", "--task", "cartpole-balance", "--seed", "3", "--steps", "3000",
            "--results-dir", str(results), "seed_steps=500", "eval_every=1000", "eval_episodes=1",
            "checkpoint_every=1000", "keep_checkpoints=3", "hidden_dim=32", "batch_size=32", "progress=false",
            "log_every=500", "threads=1"]
    assert main(["train", *args]) == 0
    return run_dir_of(args)


def test_run_files_are_complete_and_tidy(reference_run):
    files = {p.name for p in reference_run.iterdir()}
    assert {"config.yaml", "eval.csv", "train.csv", "episodes.csv", "run.json", "checkpoints"} <= files
    info = json.loads((reference_run / "run.json").read_text())
    assert info["status"] == "finished" and info["env_steps_done"] == 3000 and info["format_version"] == 2
    assert {"versions", "host", "git_commit", "wall_time_s", "device", "config_hash"} <= set(info)
    rows = list(csv.DictReader(open(reference_run / "eval.csv")))
    assert [int(r["step"]) for r in rows] == [0, 1000, 2000, 3000]
    assert all(float(r["episode_return"]) > 0 and r["success"] == "" for r in rows)
    train_rows = list(csv.DictReader(open(reference_run / "train.csv")))
    assert "critic_loss" in train_rows[-1] and float(train_rows[-1]["update_ms"]) > 0
    assert not list(reference_run.rglob("*.tmp"))  # atomic writes leave no temporaries
    assert oct((reference_run / "eval.csv").stat().st_mode & 0o777) != oct(0o600)


def test_finished_run_is_not_rerun(reference_run, tiny_sac_args, capsys):
    args = with_results(tiny_sac_args, reference_run.parents[3])
    before = (reference_run / "eval.csv").stat().st_mtime_ns
    assert main(["train", *args]) == 0
    assert "already finished" in capsys.readouterr().err
    assert (reference_run / "eval.csv").stat().st_mtime_ns == before


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killed_run_resumes_bit_for_bit(reference_run, tiny_sac_args, sig):
    run_dir = run_dir_of(tiny_sac_args)
    proc = cli(tiny_sac_args)
    wait_for(run_dir / "checkpoints", "step_0000001000.sha256")
    proc.send_signal(sig)
    proc.wait(timeout=60)
    assert proc.returncode != 0
    status = json.loads((run_dir / "run.json").read_text())["status"]
    assert status == ("interrupted" if sig == signal.SIGTERM else "running")
    resumed = cli(tiny_sac_args)
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert "resuming from" in err
    assert (run_dir / "eval.csv").read_bytes() == (reference_run / "eval.csv").read_bytes()
    assert (run_dir / "episodes.csv").read_bytes() == (reference_run / "episodes.csv").read_bytes()


def _interrupted_run(args: list[str]) -> Path:
    """Run to the end, then drop the final checkpoint so that the run looks killed after step 2000."""
    assert main(["train", *args]) == 0
    run_dir = run_dir_of(args)
    info = json.loads((run_dir / "run.json").read_text())
    info["status"] = "running"
    (run_dir / "run.json").write_text(json.dumps(info))
    for suffix in (".pt", ".sha256"):
        (run_dir / "checkpoints" / f"step_0000003000{suffix}").unlink()
    return run_dir


def test_corrupt_checkpoint_falls_back_to_previous(reference_run, tiny_sac_args, capsys):
    run_dir = _interrupted_run(tiny_sac_args)
    newest = run_dir / "checkpoints" / "step_0000002000.pt"
    data = bytearray(newest.read_bytes())
    data[len(data) // 2] ^= 0xFF
    newest.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupt"):
        CheckpointManager.load(newest)
    capsys.readouterr()
    assert main(["train", *tiny_sac_args]) == 0
    err = capsys.readouterr().err
    assert "step_0000002000.pt is corrupt" in err and "resuming from" in err and "step_0000001000.pt" in err
    assert (run_dir / "eval.csv").read_bytes() == (reference_run / "eval.csv").read_bytes()


def test_half_written_checkpoint_is_skipped(reference_run, tiny_sac_args, capsys):
    run_dir = _interrupted_run(tiny_sac_args)
    (run_dir / "checkpoints" / "step_0000002000.sha256").unlink()  # killed between checkpoint and sidecar
    capsys.readouterr()
    assert main(["train", *tiny_sac_args]) == 0
    assert "incomplete" in capsys.readouterr().err
    assert (run_dir / "eval.csv").read_bytes() == (reference_run / "eval.csv").read_bytes()


def test_no_usable_checkpoint_starts_over_and_keeps_old_files(reference_run, tiny_sac_args, capsys):
    run_dir = _interrupted_run(tiny_sac_args)
    for path in (run_dir / "checkpoints").glob("*.pt"):
        path.write_bytes(b"garbage")
    old_eval = (run_dir / "eval.csv").read_bytes()
    capsys.readouterr()
    assert main(["train", *tiny_sac_args]) == 0
    assert "starting over" in capsys.readouterr().err
    archived = list((run_dir / "restarts").glob("*/eval.csv"))
    assert len(archived) == 1 and archived[0].read_bytes() == old_eval
    assert (run_dir / "eval.csv").read_bytes() == (reference_run / "eval.csv").read_bytes()


def test_non_finite_loss_stops_with_step_and_name(tiny_sac_args, monkeypatch, capsys):
    from algorithms.sac import agent as sac_agent

    real_update = sac_agent.Agent.update

    def poisoned(self, buffer):
        metrics = real_update(self, buffer)
        if self.num_updates == 7:
            metrics["critic_loss"] = float("nan")
        return metrics

    monkeypatch.setattr(sac_agent.Agent, "update", poisoned)
    assert main(["train", *tiny_sac_args]) == 2
    err = capsys.readouterr().err
    assert "non-finite loss 'critic_loss'" in err and "env step 1012" in err and "update 7" in err
    info = json.loads((run_dir_of(tiny_sac_args) / "run.json").read_text())
    assert info["status"] == "failed" and "critic_loss" in info["error"]


def test_evaluate_reloads_a_checkpoint(reference_run, capsys):
    assert main(["evaluate", str(reference_run), "--episodes", "2"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["env_step"] == 3000 and result["episodes"] == 2 and len(result["returns"]) == 2
    assert result["episode_return"] > 0


@pytest.mark.parametrize("extra, message", [
    (["--task", "cartpole-balanse"], "unknown task 'cartpole-balanse'; nearest: cartpole-balance"),
    (["agent.lrr=0.1"], "unknown config key 'agent.lrr'; did you mean 'agent.lr'"),
    (["batch_size=many"], "config key 'agent.batch_size' expects int, got 'many'"),
    (["--steps", "-5"], "config key 'steps' must be positive, got -5"),
    (["--algo", "sacc"], "unknown algorithm 'sacc'; did you mean sac"),
    (["device=tpu"], "unknown device 'tpu'"),
    (["seed"], "override 'seed' is not of the form key=value"),
])
def test_bad_input_gets_one_clear_message(tiny_sac_args, extra, message, capsys):
    assert main(["train", *tiny_sac_args, *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_unwritable_results_folder(tmp_path, tiny_sac_args, capsys):
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where a folder should be")
    assert main(["train", *with_results(tiny_sac_args, blocked)]) == 2
    assert "is not writable" in capsys.readouterr().err


def test_other_config_in_same_folder_is_refused(reference_run, tiny_sac_args, capsys):
    args = with_results(tiny_sac_args, reference_run.parents[3])
    assert main(["train", *args, "agent.lr=0.001"]) == 2
    assert "another config (agent.lr: 0.0003 -> 0.001)" in capsys.readouterr().err


def test_trainer_schedule_defaults():
    from algorithms.common.config import RunConfig
    from envs import get_task

    spec = get_task("cheetah-run")
    full = trainer_module.Schedule.of(RunConfig(), spec)
    assert (full.total, full.eval_every, full.seed_env_steps) == (4_000_000, 100_000, 5000)
    short = trainer_module.Schedule.of(RunConfig(steps=20_000), spec)
    assert (short.eval_every, short.checkpoint_every) == (2000, 2000)


def short(args: list[str]) -> list[str]:
    """``args`` cut to one 1000-step episode (one evaluation and one checkpoint)."""
    args = list(args)
    args[args.index("--steps") + 1] = "1000"
    return args


def test_second_process_on_the_same_run_is_refused(tiny_sac_args, capsys):
    from algorithms.common.runfiles import RunLock

    args = short(tiny_sac_args)
    run_dir = run_dir_of(args)
    run_dir.mkdir(parents=True)
    with RunLock(run_dir):  # flock locks conflict across open files, in one process too
        assert main(["train", *args]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "in use by another training process" in err
        assert f"PID {os.getpid()}" in err and "Traceback" not in err
        assert not (run_dir / "run.json").exists()
    assert main(["train", *args]) == 0
    assert json.loads((run_dir / "run.json").read_text())["status"] == "finished"


def test_stale_temporary_files_are_removed_at_start(tiny_sac_args, capsys):
    args = short(tiny_sac_args)
    run_dir = run_dir_of(args)
    (run_dir / "checkpoints").mkdir(parents=True)
    stale = [run_dir / ".eval.csv.k2j4x_9a.tmp", run_dir / "checkpoints" / ".step_0000001000.pt.q8w1zz0e.tmp"]
    for path in stale:
        path.write_bytes(b"half a write")
    unrelated = run_dir / "notes.tmp"  # not an atomic writer's temporary: kept
    unrelated.write_text("mine")
    assert main(["train", *args]) == 0
    assert "removed 2 temporary file(s)" in capsys.readouterr().err
    assert not any(path.exists() for path in stale) and unrelated.read_text() == "mine"


def test_keyboard_interrupt_marks_the_run_interrupted(tiny_sac_args, monkeypatch, capsys):
    from algorithms.common.runfiles import RunLock, RunLocked
    from algorithms.sac import agent as sac_agent

    run_dir = run_dir_of(tiny_sac_args)
    real_update = sac_agent.Agent.update

    def interrupted(self, buffer):
        if self.num_updates == 5:
            with pytest.raises(RunLocked):  # the run holds its folder's lock while it trains
                RunLock(run_dir).acquire()
            raise KeyboardInterrupt
        return real_update(self, buffer)

    monkeypatch.setattr(sac_agent.Agent, "update", interrupted)
    assert main(["train", *tiny_sac_args]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert json.loads((run_dir / "run.json").read_text())["status"] == "interrupted"
    with RunLock(run_dir):  # released on the way out
        pass


def test_sigterm_during_set_up_marks_the_run_interrupted(tiny_sac_args, monkeypatch, capsys):
    run_dir = run_dir_of(tiny_sac_args)
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps({"status": "running"}))  # as a killed earlier try left it

    def unhandled(signum, frame):
        raise AssertionError("SIGTERM arrived before train() handled it")

    previous = signal.signal(signal.SIGTERM, unhandled)  # instead of the default action: killing pytest
    try:
        def make_env_then_sigterm(*args, **kwargs):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises in here
            raise AssertionError("no SIGTERM handler ran")

        monkeypatch.setattr(trainer_module, "make_env", make_env_then_sigterm)
        assert main(["train", *tiny_sac_args]) == 143
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert json.loads((run_dir / "run.json").read_text())["status"] == "interrupted"


def _checkpoint_tensors(path: Path):
    return floating_tensors(CheckpointManager.load(path)["agent"])


def test_non_finite_weight_stops_the_run_naming_its_module(tiny_sac_args, monkeypatch, capsys):
    import torch

    from algorithms.sac import agent as sac_agent

    real_update = sac_agent.Agent.update

    def poisoned(self, buffer):
        metrics = real_update(self, buffer)
        if self.num_updates == 100:  # at a scheduled weight check; the losses are still finite
            with torch.no_grad():
                self.critic_target.q1[0].weight[0, 0] = float("nan")
        return metrics

    monkeypatch.setattr(sac_agent.Agent, "update", poisoned)
    assert main(["train", *tiny_sac_args]) == 2
    err = without_cost_line(capsys.readouterr().err)
    assert err.count("\n") == 1 and "non-finite weights in module 'critic_target.q1'" in err
    assert "update 100" in err and "env step 1198" in err and "critic_loss=" in err
    run_dir = run_dir_of(tiny_sac_args)
    assert json.loads((run_dir / "run.json").read_text())["status"] == "failed"
    checkpoints = sorted((run_dir / "checkpoints").glob("*.pt"))
    assert [p.name for p in checkpoints] == ["step_0000001000.pt"]
    assert all(bool(torch.isfinite(t).all()) for p in checkpoints for t in _checkpoint_tensors(p))


def test_no_checkpoint_is_written_from_non_finite_weights(tiny_sac_args, monkeypatch, capsys):
    import torch

    real_save = trainer_module.OnlineTrainer.save_checkpoint

    def poison_then_save(self):
        if self.counters["env_step"] == 2000:  # between two scheduled weight checks
            with torch.no_grad():
                self.agent.log_alpha.fill_(float("inf"))
        real_save(self)

    monkeypatch.setattr(trainer_module.OnlineTrainer, "save_checkpoint", poison_then_save)
    assert main(["train", *tiny_sac_args]) == 2
    assert "non-finite weights in module 'log_alpha'" in capsys.readouterr().err
    names = [p.name for p in (run_dir_of(tiny_sac_args) / "checkpoints").glob("*.pt")]
    assert names == ["step_0000001000.pt"]


def test_checkpoint_config_is_checked_and_restores_a_missing_config_yaml(reference_run, tiny_sac_args, capsys):
    run_dir = _interrupted_run(tiny_sac_args)
    original = (run_dir / "config.yaml").read_bytes()
    (run_dir / "config.yaml").unlink()
    before = {name: (run_dir / name).read_bytes() for name in ("eval.csv", "run.json")}
    capsys.readouterr()
    # the checkpoint trained with lr 3e-4: a restart asking for another lr must not train on silently
    assert main(["train", *tiny_sac_args, "agent.lr=0.001"]) == 2
    err = capsys.readouterr().err
    assert "another config (agent.lr: 0.0003 -> 0.001" in err and "step_0000002000.pt" in err
    assert "Traceback" not in err
    assert not (run_dir / "config.yaml").exists()
    assert {name: (run_dir / name).read_bytes() for name in before} == before  # nothing changed
    assert main(["train", *tiny_sac_args]) == 0
    assert "resuming from" in capsys.readouterr().err
    assert (run_dir / "config.yaml").read_bytes() == original
    assert (run_dir / "eval.csv").read_bytes() == (reference_run / "eval.csv").read_bytes()


# --- run-file integrity (issue 14): logs are kept in the checkpoints and restored from them --------------------

def test_rows_deleted_from_eval_csv_are_restored_on_resume(reference_run, tiny_sac_args, capsys):
    run_dir = _interrupted_run(tiny_sac_args)
    lines = (run_dir / "eval.csv").read_text().splitlines(keepends=True)
    (run_dir / "eval.csv").write_text("".join(lines[:2]))  # header and the step-0 row: steps 1000, 2000 lost
    capsys.readouterr()
    assert main(["train", *tiny_sac_args]) == 0
    err = capsys.readouterr().err
    assert f"warning: {run_dir / 'eval.csv'} has 1 row(s), the checkpoint recorded 3" in err
    assert "restored its 3 row(s) from checkpoint step_0000002000.pt" in err
    assert (run_dir / "eval.csv").read_bytes() == (reference_run / "eval.csv").read_bytes()


def test_binary_junk_in_eval_csv_is_named_and_restored(reference_run, tiny_sac_args, capsys):
    run_dir = _interrupted_run(tiny_sac_args)
    (run_dir / "eval.csv").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00junk")
    capsys.readouterr()
    assert main(["train", *tiny_sac_args]) == 0
    err = capsys.readouterr().err
    assert f"{run_dir / 'eval.csv'} cannot be read as a CSV table" in err and "Traceback" not in err
    assert (run_dir / "eval.csv").read_bytes() == (reference_run / "eval.csv").read_bytes()


def test_edited_eval_csv_row_is_restored_on_resume(reference_run, tiny_sac_args, capsys):
    run_dir = _interrupted_run(tiny_sac_args)
    text = (run_dir / "eval.csv").read_text().splitlines(keepends=True)
    text[2] = text[2].replace(",", ",9", 1)  # the step-1000 row's second cell changed by hand
    (run_dir / "eval.csv").write_text("".join(text))
    capsys.readouterr()
    assert main(["train", *tiny_sac_args]) == 0
    assert "eval.csv row 2 differs from what the checkpoint recorded" in capsys.readouterr().err
    assert (run_dir / "eval.csv").read_bytes() == (reference_run / "eval.csv").read_bytes()


def test_finished_run_with_a_deleted_log_is_restored_before_saying_finished(reference_run, tiny_sac_args, capsys):
    assert main(["train", *tiny_sac_args]) == 0
    run_dir = run_dir_of(tiny_sac_args)
    (run_dir / "eval.csv").unlink()
    capsys.readouterr()
    assert main(["train", *tiny_sac_args]) == 0
    err = capsys.readouterr().err
    assert f"{run_dir / 'eval.csv'} is missing; restored it from the final checkpoint" in err
    assert "already finished" in err
    assert (run_dir / "eval.csv").read_bytes() == (reference_run / "eval.csv").read_bytes()


def test_finished_run_with_a_deleted_log_and_no_checkpoint_is_not_finished(tiny_sac_args, capsys):
    assert main(["train", *tiny_sac_args]) == 0
    run_dir = run_dir_of(tiny_sac_args)
    (run_dir / "eval.csv").unlink()
    for path in (run_dir / "checkpoints").iterdir():
        path.unlink()
    capsys.readouterr()
    assert main(["train", *tiny_sac_args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "already finished" not in err
    assert f"marked finished but {run_dir / 'eval.csv'} is missing" in err


def test_finished_run_without_config_yaml_refuses_another_config(tiny_sac_args, capsys):
    assert main(["train", *tiny_sac_args]) == 0
    run_dir = run_dir_of(tiny_sac_args)
    original = (run_dir / "config.yaml").read_bytes()
    (run_dir / "config.yaml").unlink()
    capsys.readouterr()
    assert main(["train", *tiny_sac_args, "agent.lr=0.001"]) == 2
    err = capsys.readouterr().err
    assert "finished run with another config (agent.lr: 0.0003 -> 0.001" in err and "already finished" not in err
    assert main(["train", *tiny_sac_args]) == 0
    assert "already finished" in capsys.readouterr().err
    assert (run_dir / "config.yaml").read_bytes() == original


def test_failure_while_building_leaves_nothing_that_refuses_the_corrected_command(tiny_sac_args, monkeypatch,
                                                                                  capsys):
    real_make_env = trainer_module.make_env

    def broken(*args, **kwargs):
        raise RuntimeError("simulated failure while building the environment")

    monkeypatch.setattr(trainer_module, "make_env", broken)
    with pytest.raises(RuntimeError, match="simulated failure"):
        main(["train", *tiny_sac_args])
    run_dir = run_dir_of(tiny_sac_args)
    assert not (run_dir / "config.yaml").exists()
    monkeypatch.setattr(trainer_module, "make_env", real_make_env)
    capsys.readouterr()
    assert main(["train", *tiny_sac_args, "eval_episodes=2"]) == 0  # another value: not refused
    assert "another config" not in capsys.readouterr().err


def test_non_finite_stop_resumes_only_when_asked(reference_run, tiny_sac_args, monkeypatch, capsys):
    import torch

    from algorithms.sac import agent as sac_agent

    real_update = sac_agent.Agent.update

    def poisoned(self, buffer):
        metrics = real_update(self, buffer)
        if self.num_updates == 700:  # after the step-2000 checkpoint, at a scheduled weight check
            with torch.no_grad():
                self.actor.net[0].weight[0, 0] = float("nan")
        return metrics

    monkeypatch.setattr(sac_agent.Agent, "update", poisoned)
    assert main(["train", *tiny_sac_args]) == 2
    run_dir = run_dir_of(tiny_sac_args)
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "failed" and info["stop_reason"] == "non_finite"
    monkeypatch.setattr(sac_agent.Agent, "update", real_update)
    capsys.readouterr()
    assert main(["train", *tiny_sac_args]) == 2  # the same command would repeat the same NaN: refused
    err = capsys.readouterr().err
    assert "stopped on non-finite values" in err and "--resume-non-finite" in err
    assert main(["train", *tiny_sac_args, "--resume-non-finite"]) == 0
    assert "step_0000002000.pt" in capsys.readouterr().err  # the last finite checkpoint
    assert json.loads((run_dir / "run.json").read_text())["status"] == "finished"
    # the bug fixed (here: the poisoned update removed), the resumed run is the uninterrupted one
    assert (run_dir / "eval.csv").read_bytes() == (reference_run / "eval.csv").read_bytes()


def test_disk_full_is_one_message_naming_the_file_and_free_space(tiny_sac_args, monkeypatch, capsys):
    import errno

    real_fsync = os.fsync
    calls = {"n": 0}

    def full_after_a_while(fd):
        calls["n"] += 1
        if calls["n"] > 6:  # past set-up: the disk fills during training
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", full_after_a_while)
    assert main(["train", *tiny_sac_args]) == 2
    err = without_cost_line(capsys.readouterr().err)
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "cannot write " + str(run_dir_of(tiny_sac_args)) in err and "No space left on device" in err
    assert " free there" in err and "--results-dir" in err
    assert not list(run_dir_of(tiny_sac_args).rglob("*.tmp"))  # no half-written temporary left behind


def _mount_tiny_tmpfs_works() -> str | None:
    """None when this process may mount a tmpfs in a private user+mount namespace, else why not."""
    if sys.platform != "linux":
        return "tmpfs mounts are Linux only"
    try:
        probe = subprocess.run(["unshare", "-r", "-m", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt && echo ok"],
                               capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"unshare is not usable here ({err})"
    if probe.stdout.strip() != "ok":
        return f"mounting a tmpfs in a user namespace is not allowed here: {probe.stderr.strip()[:200]}"
    return None


def test_full_tmpfs_gives_one_message(tmp_path):
    why_not = _mount_tiny_tmpfs_works()
    if why_not:
        pytest.skip(why_not)
    mount = tmp_path / "tiny"
    mount.mkdir()
    # 200 KiB: room for the first checkpoint (~125 KiB), not for the second beside it
    command = (f"mount -t tmpfs -o size=200k tmpfs {mount} && exec {sys.executable} -m algorithms.cli train "
               f"--algo sac --task cartpole-balance --seed 3 --steps 3000 --results-dir {mount} seed_steps=500 "
               "eval_every=1000 eval_episodes=1 checkpoint_every=1000 hidden_dim=32 batch_size=32 progress=false "
               "log_every=500 threads=1")
    result = subprocess.run(["unshare", "-r", "-m", "sh", "-c", command], capture_output=True, text=True,
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=600)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("mbdpo-bench: error:")]
    assert len(lines) == 1 and "cannot write" in lines[0] and "free there" in lines[0], result.stderr[-2000:]
