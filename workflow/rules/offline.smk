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


try:
    RANDOM_DATASETS = _plan.random_datasets(config)
except _plan.PlanError as err:
    raise WorkflowError(f"config error: {err}")

if RANDOM_DATASETS:

    rule random_dataset:
        """A dataset written from random-action episodes (`offline.random_datasets`, or `o2o.random_episodes` per
        task of `o2o.pretrain_tasks`): the smoke variants run from a clean checkout (config/*-smoke.yaml)."""
        output:
            directory("{dataset_folder}"),
        params:
            tasks=lambda w: RANDOM_DATASETS[w.dataset_folder]["tasks"],
            episodes=lambda w: RANDOM_DATASETS[w.dataset_folder]["episodes"],
            seed=lambda w: RANDOM_DATASETS[w.dataset_folder]["seed"],
        threads: 1
        log:
            f"{RESULTS}/logs/random_dataset/{{dataset_folder}}.log",
        wildcard_constraints:
            dataset_folder="|".join(re.escape(folder) for folder in RANDOM_DATASETS),
        script:
            "../scripts/random_dataset.py"


OFFLINE_MARKERS = [f"{RESULTS}/runs/{run.key}/{_plan.COMPLETE_MARKER}" for run in OFFLINE_RUNS]
if OFFLINE_RUNS and not RUNS:
    # An offline-only config (config/scaling.yaml): the online analysis has no input; this one reads the offline
    # runs (offline curves; the scaling figure, fig. 6, once a dataset has runs of two or more model sizes).

    rule analyze_offline:
        """Offline runs: the claims ledger (C4, C8), normalised score per task and model size, curves over updates,
        fig. 6."""
        input:
            OFFLINE_MARKERS,
        output:
            claims=report(f"{ANALYSIS_OUT}/figures/claims.png", caption="../report/claims.rst", category="Claims"),
            claims_md=f"{ANALYSIS_OUT}/claims.md",
            scores=report(f"{ANALYSIS_OUT}/tables/offline_scores.csv", category="Tables"),
            curves=report(f"{ANALYSIS_OUT}/figures/offline_curves.png", category="Figures"),
            summary=f"{ANALYSIS_OUT}/summary.md",
        params:
            out=ANALYSIS_OUT,
            runs=f"{RESULTS}/runs",
            published=None,
            at_step=None,
            candidate=ANALYSIS.get("candidate", "mbdpo"),
            reps=ANALYSIS.get("reps", 2000),
            seed=ANALYSIS.get("seed", 0),
            per_task=ANALYSIS.get("per_task", True),
            step_units={},
            efficiency=None,
            scale=ANALYSIS.get("scale"),
            note=ANALYSIS.get("note"),
            expected=[],
        threads: 1
        resources:
            mem_mb=8000,
            runtime=30,
        log:
            f"{RESULTS}/logs/analyze_offline.log",
        script:
            "../scripts/analyze.py"

    ALL_TARGETS[:] = [rules.analyze_offline.output.scores]
else:
    ALL_TARGETS.extend(OFFLINE_MARKERS)
