rule train:
    """One run of the grid; a resubmitted or restarted job resumes the run from its newest checkpoint."""
    output:
        f"{RESULTS}/runs/{{name}}/{{task}}/{{seed}}/{_plan.COMPLETE_MARKER}",
    params:
        name=lambda w: run_of(w).name,
        algo=lambda w: run_of(w).algo,
        task=lambda w: run_of(w).task,
        seed=lambda w: run_of(w).seed,
        steps=lambda w: run_of(w).steps,
        overrides=lambda w: dict(run_of(w).overrides),
        results_dir=RESULTS,
        device=config.get("device", "auto"),
    threads: lambda w: _plan.resources(run_of(w), USE_GPU, THREADS)["threads"]
    resources:
        mem_mb=run_resources("mem_mb"),
        runtime=run_resources("runtime"),
        gpu=run_resources("gpu"),
    log:
        f"{RESULTS}/logs/train/{{name}}/{{task}}/{{seed}}.log",
    wildcard_constraints:
        seed=r"\d+",
    script:
        "../scripts/train.py"
