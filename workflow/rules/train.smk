MS2_TASKS = "|".join(_plan.MANISKILL2_TASKS)


def _train_params():
    return dict(
        name=lambda w: run_of(w).name,
        algo=lambda w: run_of(w).algo,
        task=lambda w: run_of(w).task,
        seed=lambda w: run_of(w).seed,
        steps=lambda w: run_of(w).steps,
        overrides=lambda w: dict(run_of(w).overrides),
        results_dir=RESULTS,
        device=config.get("device", "auto"),
        maniskill2_python=MS2_PYTHON,
    )


def run_inputs(wildcards):
    """What a run starts from: an O2O fine-tuning run's pretraining run (its completion marker), else nothing."""
    after = run_of(wildcards).after
    return [after] if after else []


rule train:
    """One run of the grid; a resubmitted or restarted job resumes the run from its newest checkpoint."""
    input:
        run_inputs,
    output:
        f"{RESULTS}/runs/{{name}}/{{task}}/{{seed}}/{_plan.COMPLETE_MARKER}",
    params:
        **_train_params(),
    threads: lambda w: _plan.resources(run_of(w), USE_GPU, THREADS)["threads"]
    resources:
        mem_mb=run_resources("mem_mb"),
        runtime=run_resources("runtime"),
        gpu=run_resources("gpu"),
    log:
        f"{RESULTS}/logs/train/{{name}}/{{task}}/{{seed}}.log",
    wildcard_constraints:
        name=ONLINE_NAME,
        seed=r"\d+",
        task=rf"(?!(?:{MS2_TASKS})/)[^/]+",
    script:
        "../scripts/train.py"


rule train_maniskill2:
    """A ManiSkill2 run, in the ManiSkill2 environment: `--use-conda` builds it from envs/maniskill2.yaml; venv
    users set `maniskill2_python` (the script then runs the trainer with that interpreter)."""
    output:
        f"{RESULTS}/runs/{{name}}/{{task}}/{{seed}}/{_plan.COMPLETE_MARKER}",
    params:
        **_train_params(),
    threads: lambda w: _plan.resources(run_of(w), USE_GPU, THREADS)["threads"]
    resources:
        mem_mb=run_resources("mem_mb"),
        runtime=run_resources("runtime"),
        gpu=run_resources("gpu"),
    log:
        f"{RESULTS}/logs/train/{{name}}/{{task}}/{{seed}}.log",
    wildcard_constraints:
        name=ONLINE_NAME,
        seed=r"\d+",
        task=MS2_TASKS,
    conda:
        "../envs/maniskill2.yaml"
    script:
        "../scripts/train.py"
