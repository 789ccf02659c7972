"""``train()``: one run from its config to a finished run folder, whichever loop trains it.

The run folder is taken (``runfolder.py``: made, locked, cleaned of an interrupted write's temporary files,
checked against an earlier run there), then the loop the config asks for is built from :data:`LOOPS` and run.
Signals, storage failures and non-finite values end here as run.json's status and one error the caller reports.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

from algorithms.common import runfiles
from algorithms.common.config import RunConfig
from algorithms.common.configure import pin_machine_defaults
from algorithms.common.health import NonFiniteLossError
from algorithms.common.lifecycle import RunLoop
from algorithms.common.offline_loop import OfflineTrainer
from algorithms.common.online_loop import OnlineTrainer
from algorithms.common.runfolder import (NON_FINITE_STOP, ConfigMismatchError, RunError, RunInterrupted,
                                         check_finished_run, lock_run_dir, make_run_dir, mark_interrupted,
                                         prepare_run_dir, remove_if_unused, run_dir_for)

LOOPS: dict[str, type[RunLoop]] = {"online": OnlineTrainer, "offline": OfflineTrainer}
"""The loops a run config can ask for (``offline.dataset`` set: offline); each on the life cycle of ``lifecycle``."""


def loop_kind(cfg: RunConfig) -> str:
    return "offline" if cfg.is_offline else "online"


def _raise_interrupt(signum, frame):  # noqa: ARG001
    raise RunInterrupted(f"signal {signum}")


def train(cfg: RunConfig, resume_non_finite: bool = False) -> Path:
    """Run (or resume, or skip if finished) one configured run; returns its folder.

    The run folder is locked for the life of the process, temporary files an interrupted write left there are
    removed first, and SIGTERM or SIGINT at any point leaves run.json with status ``interrupted``. A finished
    run's files are checked (and restored from its final checkpoint) before it is reported finished. A run that
    stopped on non-finite values resumes from its last finite checkpoint only with ``resume_non_finite``.
    A storage failure (disk full, read-only, quota) is a RunError naming the file and the free space.
    """
    # From the first moment, so that a scheduler's SIGTERM during set-up is reported like one during training.
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    lock: runfiles.RunLock | None = None
    trainer: RunLoop | None = None
    run_dir: Path | None = None
    new_folder, failed = False, True
    try:
        pin_machine_defaults(cfg)
        new_folder = not run_dir_for(cfg).exists()
        run_dir = make_run_dir(cfg)
        lock = lock_run_dir(run_dir)
        stale = runfiles.remove_stale_temp_files(run_dir, run_dir / "checkpoints")
        if stale:
            print(f"warning: removed {len(stale)} temporary file(s) an interrupted write left in {run_dir}: "
                  f"{', '.join(str(p.relative_to(run_dir)) for p in stale)}", file=sys.stderr)
        run_dir, finished = prepare_run_dir(cfg, resume_non_finite)
        if finished:
            check_finished_run(cfg, run_dir)
            print(f"{run_dir} already finished; nothing to do", file=sys.stderr)
            failed = False
            return run_dir
        trainer = LOOPS[loop_kind(cfg)](cfg, run_dir)
        trainer.run()
        failed = False
        return run_dir
    except (RunInterrupted, KeyboardInterrupt):
        if lock is not None and run_dir is not None:  # without the lock, run.json is another process's
            mark_interrupted(run_dir, trainer.write_run_info if trainer is not None else None)
        raise
    except ConfigMismatchError:
        raise  # only this request was refused: the run and its run.json stay as they were
    except runfiles.ResultsWriteError as err:
        if trainer is not None:
            try:
                trainer.write_run_info("failed", error=str(err))
            except OSError:
                pass  # the same full disk; the message below says what happened
        raise RunError(str(err)) from None
    except Exception as err:
        if trainer is not None:
            extra = {"stop_reason": NON_FINITE_STOP} if isinstance(err, NonFiniteLossError) else {}
            trainer.write_run_info("failed", error=f"{type(err).__name__}: {err}", **extra)
        raise
    finally:
        if lock is not None:
            lock.release()
            if failed and new_folder and run_dir is not None:
                remove_if_unused(run_dir)  # a start that failed (e.g. a corrupt dataset) leaves no folder behind
        signal.signal(signal.SIGTERM, previous)
