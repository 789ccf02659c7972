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


if PACKS:

    def pack_of(wildcards):
        if wildcards.pack not in PACK_BY_ID:
            raise WorkflowError(f"{wildcards.pack} is not a pack of this config's grid (runs_per_gpu)")
        return PACK_BY_ID[wildcards.pack]

    def pack_resources(attribute):
        return lambda w: _plan.pack_resources(pack_of(w), THREADS)[attribute]

    def pack_members(wildcards):
        """Each member as train.py's params give one run, with its threads, log and marker."""
        return [dict(name=run.name, algo=run.algo, task=run.task, seed=run.seed, steps=run.steps,
                     overrides=dict(run.overrides), threads=_plan.resources(run, True, THREADS)["threads"],
                     log=f"{RESULTS}/logs/train/{run.key}.log",
                     marker=f"{RESULTS}/runs/{run.key}/{_plan.COMPLETE_MARKER}")
                for run in pack_of(wildcards).runs]

    rule train_pack:
        """Up to runs_per_gpu runs on one GPU, each its own trainer process (workflow/scripts/train_pack.py); each
        finished run gets its own complete.json, the pack its marker once all finished. A resubmitted job resumes
        every unfinished member from its newest checkpoint."""
        input:
            lambda w: sorted({run.after for run in pack_of(w).runs if run.after}),
        output:
            f"{RESULTS}/packs/{{pack}}/{_plan.COMPLETE_MARKER}",
        params:
            pack=lambda w: w.pack,
            members=pack_members,
            results_dir=RESULTS,
            device=config.get("device", "auto"),
        threads: pack_resources("threads")
        resources:
            mem_mb=pack_resources("mem_mb"),
            runtime=pack_resources("runtime"),
            gpu=pack_resources("gpu"),
            # SLURM (snakemake-executor-plugin-slurm): cores for all members, over the profile's cpus_per_gpu
            cpus_per_task=pack_resources("threads"),
        log:
            f"{RESULTS}/logs/packs/{{pack}}.log",
        wildcard_constraints:
            pack=r"pack-[0-9a-f]{10}",
        script:
            "../scripts/train_pack.py"
