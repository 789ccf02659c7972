ANALYSIS = config.get("analysis") or {}
ANALYSIS_OUT = ANALYSIS.get("out", f"{RESULTS}/analysis")
RUNNABLE = [run for run in RUNS if run.key not in BLOCKED] if config.get("skip_blocked") else RUNS


rule analyze:
    """The claims ledger (a verdict per claim of the paper), rliable statistics, the paper's tables and figures,
    from the config's runs."""
    input:
        list(dict.fromkeys(run_marker(run) for run in RUNNABLE)),  # a pack stands for each of its runs
    output:
        claims=report(f"{ANALYSIS_OUT}/figures/claims.png", caption="../report/claims.rst", category="Claims"),
        claims_table=report(f"{ANALYSIS_OUT}/claims.csv", caption="../report/claims_table.rst", category="Claims"),
        claims_md=f"{ANALYSIS_OUT}/claims.md",
        table=report(f"{ANALYSIS_OUT}/tables/per_domain.csv", caption="../report/per_domain.rst",
                     category="Tables"),
        curves=report(f"{ANALYSIS_OUT}/figures/aggregate_curves.png", caption="../report/aggregate_curves.rst",
                      category="Figures"),
        intervals=report(f"{ANALYSIS_OUT}/figures/interval_estimates.png",
                         caption="../report/interval_estimates.rst", category="Figures"),
        profiles=report(f"{ANALYSIS_OUT}/figures/performance_profiles.png",
                        caption="../report/performance_profiles.rst", category="Figures"),
        diagnostics=report(f"{ANALYSIS_OUT}/figures/diagnostics.png", caption="../report/diagnostics.rst",
                           category="Figures"),
        timing=report(f"{ANALYSIS_OUT}/tables/training_time.csv", caption="../report/training_time.rst",
                      category="Tables"),
        summary=f"{ANALYSIS_OUT}/summary.md",
    params:
        out=ANALYSIS_OUT,
        runs=f"{RESULTS}/runs",
        published=ANALYSIS.get("published"),
        at_step=ANALYSIS.get("at_step"),
        candidate=ANALYSIS.get("candidate", "mbdpo"),
        reps=ANALYSIS.get("reps", 2000),
        seed=ANALYSIS.get("seed", 0),
        per_task=ANALYSIS.get("per_task", True),
        step_units=ANALYSIS.get("step_units") or {},
        efficiency=ANALYSIS.get("efficiency"),
        scale=ANALYSIS.get("scale"),
        note=ANALYSIS.get("note"),
        expected=[(run.name, run.task, run.seed) for run in RUNNABLE],
    threads: 1
    resources:
        mem_mb=8000,
        runtime=30,
    log:
        f"{RESULTS}/logs/analyze.log",
    script:
        "../scripts/analyze.py"


ALL_TARGETS = [rules.analyze.output.table]


onsuccess:
    # The HTML report (figures with captions) is built once the analysis exists; `report: false` skips it.
    if config.get("report", True) and Path(ANALYSIS_OUT, "summary.md").exists():
        problem = _plan.build_report(workflow.main_snakefile, Path.cwd(), config, Path(RESULTS) / "report.html")
        if problem:
            print(f"note: {problem}; build it with: snakemake --report {RESULTS}/report.html (same --configfile)")
    print(_plan.finished_message(ANALYSIS_OUT, RESULTS))


VALIDATE = config.get("validate") or {}
if VALIDATE:
    if not VALIDATE.get("published"):
        raise WorkflowError("validate.published: set it to a local copy of the released curves (per-algorithm "
                            "folders of per-task CSVs, e.g. mbdpo/cartpole-balance.csv)")
    if not Path(VALIDATE["published"]).is_dir():
        raise WorkflowError(f"validate.published: {VALIDATE['published']!r} is not a directory")

    rule compare_published:
        """Learning checks: our runs beside the released curves at the same env steps."""
        input:
            list(dict.fromkeys(run_marker(run) for run in RUNNABLE)),
        output:
            report(VALIDATE.get("out", f"{ANALYSIS_OUT}/validate/comparison.csv"),
                   caption="../report/comparison.rst", category="Tables"),
        params:
            runs=f"{RESULTS}/runs",
            published=VALIDATE["published"],
            at_steps=VALIDATE.get("at_steps", [100000]),
            margin=VALIDATE.get("margin", 10.0),
            step_units=VALIDATE.get("step_units") or {},
            expected=[(run.name, run.task, run.seed) for run in RUNNABLE],
        log:
            f"{RESULTS}/logs/compare_published.log",
        script:
            "../scripts/compare_published.py"

    ALL_TARGETS.append(rules.compare_published.output[0])
