# Offline multi-task runs (the config's `offline` section, plan.expand_offline): each trains on a dataset folder
# that the DAG knows as an input, so a dataset collected (or imported) once is reused by every run that names it.
# OFFLINE_RUNS and OFFLINE_NAMES are planned in rules/common.smk with the online runs.
OFFLINE_RUN_BY_KEY = {run.key: run for run in OFFLINE_RUNS}


def offline_run_of(wildcards):
    key = f"{wildcards.name}/{wildcards.dataset}/{wildcards.seed}"
    if key not in OFFLINE_RUN_BY_KEY:
        raise WorkflowError(f"offline run {key} is not in the config's `offline` grid")
    return OFFLINE_RUN_BY_KEY[key]


rule train_offline:
    """One offline run (`mbdpo-bench train --offline DATASET`); a restarted job resumes from its newest checkpoint."""
    input:
        dataset=lambda w: offline_run_of(w).dataset,
    output:
        f"{RESULTS}/runs/{{name}}/{{dataset}}/{{seed}}/{_plan.COMPLETE_MARKER}",
    params:
        name=lambda w: offline_run_of(w).name,
        algo=lambda w: offline_run_of(w).algo,
        seed=lambda w: offline_run_of(w).seed,
        steps=lambda w: offline_run_of(w).steps,
        overrides=lambda w: offline_run_of(w).overrides_dict(),
        results_dir=RESULTS,
        device=config.get("device", "auto"),
    threads: lambda w: _plan.offline_resources(offline_run_of(w), USE_GPU, THREADS)["threads"]
    resources:
        mem_mb=lambda w: _plan.offline_resources(offline_run_of(w), USE_GPU, THREADS)["mem_mb"],
        runtime=lambda w: _plan.offline_resources(offline_run_of(w), USE_GPU, THREADS)["runtime"],
        gpu=lambda w: _plan.offline_resources(offline_run_of(w), USE_GPU, THREADS)["gpu"],
    log:
        f"{RESULTS}/logs/train_offline/{{name}}/{{dataset}}/{{seed}}.log",
    wildcard_constraints:
        name=OFFLINE_NAMES,
        seed=r"\d+",
    script:
        "../scripts/train_offline.py"


_O2O = _plan._o2o(config)
if _O2O is not None and _O2O.get("random_episodes"):

    rule random_dataset:
        """The O2O pretraining dataset written from random-action episodes (`o2o.random_episodes` per task of
        `o2o.pretrain_tasks`): the small variant runs from a clean checkout (config/o2o-smoke.yaml)."""
        output:
            directory(_O2O["dataset"]),
        params:
            tasks=_O2O["pretrain_tasks"],
            episodes=_O2O["random_episodes"],
            seed=0,
        threads: 1
        log:
            f"{RESULTS}/logs/random_dataset.log",
        script:
            "../scripts/random_dataset.py"


OFFLINE_MARKERS = [f"{RESULTS}/runs/{run.key}/{_plan.COMPLETE_MARKER}" for run in OFFLINE_RUNS]
if OFFLINE_RUNS and not RUNS:
    # an offline-only config (config/scaling.yaml): its targets are the runs; the online analysis has no input.
    ALL_TARGETS[:] = OFFLINE_MARKERS
else:
    ALL_TARGETS.extend(OFFLINE_MARKERS)
