import re

# Plan the config once, at parse time: every run, what cannot run on this machine, and a bad key or value stops
# here, before any job starts.
import plan as _plan

try:
    RUNS = _plan.expand(config)
    if config.get("check_overrides", True):
        _plan.check_overrides(RUNS)
    OFFLINE_RUNS = _plan.expand_offline(config)  # the `offline` section: rule train_offline (rules/offline.smk)
    RUNS_PER_GPU = _plan.check_runs_per_gpu(config)  # > 1: runs share GPU jobs (rule train_pack)
except _plan.PlanError as err:
    raise WorkflowError(f"config error: {err}")

# Run families of offline runs belong to rule train_offline only; online rules never match them.
OFFLINE_NAMES = "|".join(sorted({re.escape(run.name) for run in OFFLINE_RUNS})) or "(?!)"
ONLINE_NAME = rf"(?!(?:{OFFLINE_NAMES})/)[^/]+"  # the whole name, up to its /

RESULTS = config.get("results_dir", "results")
USE_GPU = bool(config.get("gpu", False))
THREADS = config.get("threads_per_run")
RUN_BY_KEY = {run.key: run for run in RUNS}
MS2_PYTHON = config.get("maniskill2_python")  # venv users: the ManiSkill2 environment's interpreter
BLOCKED = {run.key: reason for run in RUNS if (reason := _plan.blocked(run, MS2_PYTHON))}

if RUNS:
    # where each run's time request (resources: runtime) comes from: the cost table of a built-in, a plug-in's own
    # estimate, or the stated default for an algorithm that gives none (plan._cost)
    logger.info(f"time requests of the {len(RUNS)} online run(s), by algorithm (workflow/scripts/plan.py):\n"
                + "\n".join(_plan.cost_lines(RUNS, USE_GPU)))

if OFFLINE_RUNS:
    logger.info(f"{len(OFFLINE_RUNS)} offline run(s); memory estimated before they start "
                "(algorithms/common/memory.py):\n" + "\n".join(_plan.offline_plan_lines(OFFLINE_RUNS, USE_GPU)))

if BLOCKED:
    by_reason = {}
    for key, reason in BLOCKED.items():
        by_reason.setdefault(reason, []).append(key)
    lines = [f"  {reason}: {len(keys)} run(s), e.g. {keys[0]}" for reason, keys in sorted(by_reason.items())]
    logger.warning(f"{len(BLOCKED)} of {len(RUNS)} runs cannot run on this machine (their jobs stop before "
                   "starting):\n" + "\n".join(lines))

# Packing (runs_per_gpu > 1, gpu: true): runs of rule train of the same algorithm and preset, k to a GPU job (rule
# train_pack); their markers are the pack's, so the DAG asks for packs and never for their runs' own train jobs.
PACKS = _plan.packs(RUNS, RUNS_PER_GPU, MS2_PYTHON)
PACK_BY_ID = {pack.id: pack for pack in PACKS}
PACK_OF = {run.key: pack for pack in PACKS for run in pack.runs}
if PACKS:
    logger.info(f"{len(PACK_OF)} of {len(RUNS)} runs packed up to {RUNS_PER_GPU} per GPU job: {len(PACKS)} "
                "train_pack job(s); the others keep their own job")


def pack_marker(pack):
    return f"{RESULTS}/packs/{pack.id}/{_plan.COMPLETE_MARKER}"


def run_marker(run):
    """What stands for a finished run in the DAG: its own complete.json, or its pack's when it is packed."""
    pack = PACK_OF.get(run.key)
    return pack_marker(pack) if pack is not None else f"{RESULTS}/runs/{run.key}/{_plan.COMPLETE_MARKER}"


def run_of(wildcards):
    key = f"{wildcards.name}/{wildcards.task}/{wildcards.seed}"
    if key not in RUN_BY_KEY:
        raise WorkflowError(f"run {key} is not in the config's grid")
    return RUN_BY_KEY[key]


def run_resources(attribute):
    return lambda wildcards: _plan.resources(run_of(wildcards), USE_GPU, THREADS)[attribute]
