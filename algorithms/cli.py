"""``mbdpo-bench``: the command line over the harness's functions (the workflow calls the same ones).

    mbdpo-bench tasks [--json] [--suite S]          (built-in and plug-in tasks; plug-in problems as lines)
    mbdpo-bench algorithms [--json]                  (built-in and plug-in algorithms; plug-in problems as lines)
    mbdpo-bench new-algorithm NAME [--out DIR]       (a minimal plug-in package: pyproject.toml, Config, Agent)
    mbdpo-bench check-algorithm NAME [--task T] [--steps N] [key=value ...]   (the agent contract, item by item)
    mbdpo-bench train --algo sac --task cartpole-balance --seed 1 --steps 20000 [--results-dir DIR] [key=value ...]
    mbdpo-bench train --offline DATASET --algo tdmpc2 --steps 100000 [key=value ...]   (multi-task, offline)
    mbdpo-bench evaluate RUN_DIR [--checkpoint PATH] [--episodes N]
    mbdpo-bench validate NAME [--results-dir DIR]     (learning checks of config/checks/; --list)
    mbdpo-bench analyze [--runs DIR] [--published DIR] [--at-step N] --out OUT   (tables and figures)
                        [--step-unit mbdpo=env] [--both-units] [--efficiency mbdpo:tdmpc2]
    mbdpo-bench claims [--runs DIR] [--published DIR] [--out DIR]   (the claims ledger: verdict per claim)
    mbdpo-bench doctor [--json]                      (installed versions, known-bad combinations)
    mbdpo-bench collect RUN_DIR [RUN_DIR ...] --out PATH [--from buffer|policy] [--episodes N] [--noise STD]
    mbdpo-bench dataset info PATH [--verify] [--json] (tasks, episodes, transitions, returns per task)
    mbdpo-bench dataset import-tdmpc2 SRC_DIR --out PATH --task-set mt30|mt80 [--dims TASK=OBS:ACTION,...]
    mbdpo-bench export-latents RUN_DIR --out FILE.npz [--checkpoint CKPT] [--episodes N] [--dataset PATH]
                                     (latent states z and task embeddings of a multi-task checkpoint)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _tasks(args: argparse.Namespace) -> int:
    from envs import all_tasks, availability, plugin_task, task_plugin_problems

    records = []
    for spec in all_tasks():
        if args.suite and spec.suite != args.suite and spec.domain != args.suite:
            continue
        ok, reason = availability(spec)
        plugin = plugin_task(spec.name)
        extra = {"plugin": plugin.package} if plugin is not None else {}  # a built-in record keeps its keys
        records.append({**spec.as_dict(), "available": ok, "reason": reason, **extra})
    problems = task_plugin_problems()
    if args.json:
        json.dump(records, sys.stdout, indent=1)
        print()
        for line in problems:  # the JSON stays a list of tasks; what could not be listed goes to stderr
            print(f"mbdpo-bench: task plug-in problem: {line}", file=sys.stderr)
        return 1 if problems else 0
    header = ("name", "suite", "domain", "obs", "repeat", "length", "discount", "seed_steps", "budget", "available")
    rows = [(r["name"], r["suite"], r["domain"], r["obs"], str(r["action_repeat"]), str(r["episode_length"]),
             f"{r['discount']:.3f}", str(r["seed_steps"]), f"{r['budget']:,}",
             "yes" if r["available"] else f"no: {r['reason']}") for r in records]
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(header)]
    for row in (header, *rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    print(f"{len(records)} tasks, {sum(r['available'] for r in records)} available here")
    for line in problems:
        print(f"problem: {line}")
    return 1 if problems else 0


def _algorithms(args: argparse.Namespace) -> int:
    from importlib import metadata

    from algorithms.registry import list_algorithms, supports_offline

    entries, problems = list_algorithms()
    try:
        harness = metadata.version("mbdpo-bench")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        harness = "-"
    records = [{"name": e.name, "package": e.package, "version": e.version or harness, "builtin": e.builtin,
                "modes": "online+offline" if supports_offline(e) else "online", "summary": e.summary,
                "module": e.module} for e in entries]
    if args.json:
        json.dump({"algorithms": records, "problems": problems}, sys.stdout, indent=1)
        print()
        return 1 if problems else 0
    header = ("name", "package", "version", "modes", "summary")
    rows = [tuple(r[key] for key in header) for r in records]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    for row in (header, *rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    plugins = sum(not r["builtin"] for r in records)
    print(f"{len(records)} algorithms ({plugins} from plug-ins); offline = multi-task offline training (Agent.set_task)")
    for line in problems:
        print(f"problem: {line}")
    return 1 if problems else 0


def _new_algorithm(args: argparse.Namespace) -> int:
    from algorithms.commands.new_algorithm import new_algorithm

    root = new_algorithm(args.name, args.out)
    print(f"wrote {root}: pyproject.toml (entry point {args.name}), README.md and the module with Config and Agent")
    print(f"next: pip install -e {root} && mbdpo-bench check-algorithm {args.name}")
    return 0


def _check_algorithm(args: argparse.Namespace) -> int:
    import shutil
    import tempfile

    from algorithms.commands.check_algorithm import ITEMS, check_algorithm
    from algorithms.common.config import parse_overrides
    from algorithms.registry import get_algorithm

    get_algorithm(args.name)  # an unknown or broken one: its one-line error before anything is printed
    print(f"checking algorithm {args.name} on {args.task} ({args.device}; each item: PASS, FAIL or SKIP)", flush=True)
    work = args.keep or tempfile.mkdtemp(prefix=f"check-{args.name}-")

    def report(item) -> None:
        print(item.line(), flush=True)

    try:
        items = check_algorithm(args.name, args.task, parse_overrides(args.overrides), steps=args.steps,
                                device=args.device, seed=args.seed, workdir=work, report=report)
    except BaseException:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        raise
    passed = sum(bool(i.passed) for i in items)
    if passed == len(ITEMS):
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        print(f"all {len(ITEMS)} checks passed")
        return 0
    print(f"{passed} of {len(ITEMS)} checks passed; the runs and their stderr.log are in {work}")
    return 1


def _train(args: argparse.Namespace) -> int:
    from algorithms.common.config import parse_overrides
    from algorithms.common.configure import build_config
    from algorithms.common.run import train

    overrides = parse_overrides(args.overrides)
    if args.offline is not None:
        overrides.setdefault("offline.dataset", args.offline)
    for key in ("task", "seed", "steps", "results_dir", "device"):
        value = getattr(args, key)
        if value is not None:
            overrides.setdefault(key, str(value))
    cfg = build_config(args.algo, args.config, overrides)
    run_dir = train(cfg, resume_non_finite=args.resume_non_finite)
    print(run_dir)
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from algorithms.commands.evaluate import evaluate_checkpoint

    result = evaluate_checkpoint(Path(args.run_dir), Path(args.checkpoint) if args.checkpoint else None,
                                 args.episodes, args.device)
    print(json.dumps(result))
    return 0


def _validate(args: argparse.Namespace) -> int:
    from algorithms.commands.checks import available_checks, run_check
    from algorithms.common.config import parse_overrides

    if args.list:
        print("\n".join(available_checks()))
        return 0
    if not args.name:
        print("mbdpo-bench: error: name a learning check (--list shows them)", file=sys.stderr)
        return 2
    result = run_check(args.name, args.results_dir, parse_overrides(args.overrides))
    print(json.dumps(result.as_dict()))
    return 0 if result.passed else 1


def _analyze(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from analysis import AnalysisInputError
    from analysis.efficiency import parse_pairs
    from analysis.report import analyze, analyze_both_units
    from analysis.units import parse_step_units

    runs = args.runs
    if runs is None and args.published is None:
        runs = "results/runs"
    algorithms = [a for a in args.algorithms.split(",") if a] if args.algorithms else None
    step_units = parse_step_units(args.step_units)  # validated before anything is read
    out = Path(args.out)
    blocking = next((p for p in (out, *out.parents) if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise AnalysisInputError(f"--out {args.out!r}: {str(blocking)!r} is a file, not a folder; give a folder "
                                 "(it is made if missing) where tables/ and figures/ can be written")
    pairs = parse_pairs([p for item in args.efficiency for p in item.split(",") if p]) if args.efficiency else None
    options = dict(at_step=args.at_step, algorithms=algorithms, candidate=args.candidate, reps=args.reps,
                   seed=args.seed, per_task=not args.no_per_task, efficiency=pairs, scale=args.scale,
                   note=args.note)
    if args.both_units:
        if args.published is None or args.runs is not None:
            raise AnalysisInputError("--both-units reads released curves only: give --published DIR and no --runs")
        results = analyze_both_units(args.out, args.published, step_units, cost=cost_model(), **options)
        for unit, res in results.items():
            _report_problems(res, Path(args.out) / f"units-{unit}")
        print(f"both step-unit readings: {Path(args.out) / 'summary.md'} compares them")
        failed = [_serious_problems(res, Path(args.out) / f"units-{unit}", args.strict)
                  for unit, res in results.items()]
        return 1 if any(failed) else 0
    result = analyze(args.out, runs=runs, published=args.published, step_units=step_units, cost=cost_model(),
                     **options)
    if args.embedding:
        from analysis.embedding import load_task_embedding, tsne_embedding
        from analysis.figures import save, task_embedding_figure
        from analysis.tables import write_table

        tasks = [t for t in args.embedding_tasks.split(",") if t] if args.embedding_tasks else []
        emb = tsne_embedding(load_task_embedding(args.embedding), tasks, seed=args.seed)
        result.written += write_table(emb, Path(args.out) / "tables" / "task_embedding", formats=("csv",))
        from analysis.figures import mark
        from analysis.report import scale_note

        result.written.append(save(mark(task_embedding_figure(emb, ["hopper-hop"]), scale_note(args.scale, args.note)),
                                   Path(args.out) / "figures" / "task_embedding.png"))
    if args.latents:
        written, lines = _latent_outputs(args)
        result.written += written
        for line in lines:
            print(line)
    _report_problems(result, Path(args.out))
    return 1 if _serious_problems(result, Path(args.out), args.strict) else 0


def cost_model():
    """The workflow's cost model (workflow/scripts/plan.py) for the claims ledger's estimates, or None when this
    installation has no workflow folder (then the ledger gives seeds, not hours)."""
    import importlib.util

    if "plan" in sys.modules and hasattr(sys.modules["plan"], "estimated_hours"):
        return sys.modules["plan"]
    path = Path(__file__).resolve().parents[1] / "workflow" / "scripts" / "plan.py"
    if not path.exists():
        return None
    spec = importlib.util.spec_from_file_location("plan", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["plan"] = module
    spec.loader.exec_module(module)
    return module


def _claims(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from analysis import ledger as L
    from analysis.report import scale_note
    from analysis.units import parse_step_units

    runs = args.runs
    if runs is None and args.published is None:
        runs = "results/runs"
    step_units = parse_step_units(args.step_units)
    sources = L.load_sources(runs, args.published, step_units, args.scale, reps=args.reps, seed=args.seed)
    ledger = L.build_ledger(sources, cost_model())
    written = L.write_ledger(ledger, args.out, scale_note(args.scale, args.note))
    for s in ledger.summary.itertuples():
        print(f"{s.claim:>4} {s.title:<34} {s.verdict}")
    print(f"claims ledger: {written[0]} (claims.csv, figures/claims.png beside it)")
    return 0


def _latent_outputs(args: argparse.Namespace) -> tuple[list[Path], list[str]]:
    """``analyze --latents FILE.npz``: figures/latent_trajectories.png and tables/latent_projection.csv (the 2-D PCA
    of every exported z), and — unless ``--embedding`` drew it already — figures/task_embedding.png and
    tables/task_embedding.csv from the export's embedding table, whose task names the export carries."""
    from analysis.embedding import latent_projection, latent_trajectories_figure, load_latents, tsne_embedding
    from analysis.figures import mark, save, task_embedding_figure
    from analysis.report import scale_note
    from analysis.tables import write_table

    out = Path(args.out)
    banner = scale_note(args.scale, args.note)
    latents = load_latents(args.latents)
    projection, ratio = latent_projection(latents)
    written = write_table(projection, out / "tables" / "latent_projection", formats=("csv",))
    written.append(save(mark(latent_trajectories_figure(projection, ratio), banner),
                        out / "figures" / "latent_trajectories.png"))
    lines = [f"latent trajectories of {len(latents['z'])} exported latents: {written[-1]}"]
    weights, tasks = latents["task_embedding"], latents["tasks"]
    if args.embedding:
        lines.append("task embeddings: drawn from --embedding (the export's table not used)")
    elif len(weights) >= 3:
        emb = tsne_embedding(weights, tasks, seed=args.seed)
        written += write_table(emb, out / "tables" / "task_embedding", formats=("csv",))
        written.append(save(mark(task_embedding_figure(emb, ["hopper-hop"]), banner),
                            out / "figures" / "task_embedding.png"))
    else:
        lines.append(f"no task-embedding figure: t-SNE needs at least 3 tasks, the export has {len(weights)}")
    return written, lines


def _export_latents(args: argparse.Namespace) -> int:
    from algorithms.commands.latents import export_latents

    tasks = [t for t in args.tasks.split(",") if t] if args.tasks else None
    path = export_latents(args.run_dir, args.out, checkpoint=args.checkpoint, episodes=args.episodes,
                          dataset=args.dataset, tasks=tasks, seed=args.seed, device=args.device)
    print(path)
    return 0


def _serious_problems(result, out: Path, strict: bool) -> bool:
    """Print one line on stderr if problems.csv has rows of a serious kind; True if that fails the command."""
    from analysis.report import SERIOUS_PROBLEMS, serious_problems

    n = serious_problems(result.problems)
    if not n:
        return False
    line = (f"{n} problem(s) of kind {'/'.join(SERIOUS_PROBLEMS)}: results are missing or were left out; "
            f"see {out / 'tables' / 'problems.csv'}")
    print(f"mbdpo-bench: {'error' if strict else 'warning'}: {line}", file=sys.stderr)
    return strict


def _report_problems(result, out: Path) -> None:
    counts = result.problems.groupby("kind").size().to_dict() if not result.problems.empty else {}
    print(f"wrote {len(result.written)} files under {out} (summary.md lists them)")
    if counts:
        print("problems: " + ", ".join(f"{n} {kind}" for kind, n in counts.items())
              + f" (details: {out / 'tables' / 'problems.csv'})")


def _doctor(args: argparse.Namespace) -> int:
    from envs import TASKS, availability
    from envs.doctor import installed_versions, problems

    versions = installed_versions()
    found = problems(versions)
    suites: dict[str, dict[str, int]] = {}
    reasons: dict[str, set] = {}
    for spec in TASKS.values():
        ok, reason = availability(spec)
        counts = suites.setdefault(spec.domain, {"available": 0, "total": 0})
        counts["total"] += 1
        counts["available"] += ok
        if not ok:
            reasons.setdefault(spec.domain, set()).add(reason)
    if args.json:
        json.dump({"versions": versions, "problems": found, "domains": suites,
                   "reasons": {k: sorted(v) for k, v in reasons.items()}}, sys.stdout, indent=1)
        print()
        return 1 if found else 0
    print("installed versions:")
    for name, version in versions.items():
        print(f"  {name:32s} {version or '-'}")
    print("tasks available here:")
    for domain, counts in suites.items():
        extra = f"  ({'; '.join(sorted(reasons[domain]))})" if domain in reasons else ""
        print(f"  {domain:12s} {counts['available']}/{counts['total']}{extra}")
    if found:
        print("known-bad combinations:")
        for problem in found:
            print(f"  - {problem}")
        return 1
    print("no known-bad combination")
    return 0


def _collect(args: argparse.Namespace) -> int:
    from algorithms.commands.collect import collect

    manifest = collect(args.run_dirs, args.out, source=args.source, episodes=args.episodes, noise_std=args.noise,
                       seed=args.seed, device=args.device)
    print(f"wrote {args.out}: {len(manifest['tasks'])} task(s), {sum(manifest['episodes'])} episodes, "
          f"{sum(manifest['transitions'])} transitions from {len(manifest['runs'])} run(s)")
    return 0


def _dataset_info(args: argparse.Namespace) -> int:
    from offline.dataset import dataset_info
    from offline.verify import verify_dataset

    info = dataset_info(args.path)
    checks = verify_dataset(args.path) if args.verify else None
    if args.json:
        json.dump({**info, "verified": checks is not None, "checks": checks or []}, sys.stdout, indent=1)
        print()
        return 0

    def number(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    print(f"{info['path']}: format {info['format_version']}, harness {info['harness_version']}, "
          f"source {info['source']}, created {info['created']}, {info['runs']} collecting run(s)")
    header = ("id", "task", "obs", "action", "episodes", "transitions", "return_mean", "return_min", "return_max")
    rows = [(str(r["task_id"]), r["task"], str(r["obs_dim"]), str(r["action_dim"]), str(r["episodes"]),
             str(r["transitions"]), number(r["return_mean"]), number(r["return_min"]), number(r["return_max"]))
            for r in info["tasks"]]
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(header)]
    for row in (header, *rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    print(f"{len(rows)} tasks, {info['episodes']} episodes, {info['transitions']} transitions")
    if checks is None:
        print("(as the manifest records them; nothing was checked: --verify checks what training checks)")
    else:
        for line in checks:
            print(f"verified {line}" if not line.startswith("note:") else line)
    return 0


def _dataset_import_tdmpc2(args: argparse.Namespace) -> int:
    from offline.tdmpc2_import import import_tdmpc2, parse_dims

    manifest = import_tdmpc2(args.src_dir, args.out, args.task_set, dims=parse_dims(args.dims))
    with_data = sum(1 for n in manifest["episodes"] if n)
    print(f"wrote {args.out}: {args.task_set} ({with_data} of {len(manifest['tasks'])} tasks with data), "
          f"{sum(manifest['episodes'])} episodes, {sum(manifest['transitions'])} transitions")
    return 0


TRAIN_DESCRIPTION = """\
Train one algorithm on one task; the same command again resumes an interrupted run.

GPU-scale defaults: TD-MPC2 and MBDPO default to the released settings, sized for a GPU: the 6M model, batches
of 256 and the released planning at every act (TD-MPC2: MPPI with 512 samples x 6 iterations; MBDPO: 20
diffusion steps over 512 candidates). On a CPU (2 cores) that costs about 0.3 s (TD-MPC2) to 1 s (MBDPO) per act
and 0.2 s per update: hours for a few thousand steps, weeks for a task's published budget. The lighter CPU
settings of the learning checks (config/checks/tdmpc2-cartpole-cpu.yaml, mbdpo-cartpole-cpu.yaml) are, e.g.:
  agent.model_size=1.7M agent.num_samples=128 agent.num_elites=16 agent.num_pi_trajs=6 agent.batch_size=128
  plus agent.iterations=3 (TD-MPC2) or agent.diffusion_steps=5 (MBDPO), and eval_episodes=2
(several times cheaper per step). SAC costs milliseconds per step anywhere.

A run shows its phase (seeding, pretraining, training, evaluating) with rate and ETA; on a CPU it prints its
measured cost per act and per update after its first steps and the estimate for the whole run (naming the
lighter settings when that is over 2 hours). A run whose --steps end before its seed steps (the task's default,
`mbdpo-bench tasks`; e.g. cartpole: 2,500 agent steps = 5,000 env steps) never updates: it warns at start; set
seed_steps=N or raise --steps.
"""


def build_parser() -> argparse.ArgumentParser:
    from algorithms.registry import ALGORITHMS

    parser = argparse.ArgumentParser(prog="mbdpo-bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    tasks = sub.add_parser("tasks", help="list the registered tasks and whether this machine can create them")
    tasks.add_argument("--json", action="store_true", help="a JSON list of objects instead of a table")
    tasks.add_argument("--suite", help="only this suite or domain (dmcontrol, metaworld, 'Visual RL', …)")
    tasks.set_defaults(func=_tasks)

    algos = sub.add_parser("algorithms", help="list the algorithms, built in and from installed plug-ins (exit 1 "
                                              "if a plug-in cannot be used: one line each)")
    algos.add_argument("--json", action="store_true", help="a JSON object {algorithms: [...], problems: [...]}")
    algos.set_defaults(func=_algorithms)

    new = sub.add_parser("new-algorithm", help="write a minimal installable plug-in package for a new algorithm",
                         description="Write OUT/mbdpo-bench-NAME/: pyproject.toml with the entry point (group "
                                     "mbdpo_bench.algorithms), README.md, and mbdpo_bench_NAME/__init__.py with a "
                                     "documented Config dataclass and a linear-policy Agent that trains and resumes. "
                                     "The contract: algorithms/README.md.")
    new.add_argument("name", help="the algorithm's name (lower-case letters, digits, _)")
    new.add_argument("--out", default=".", help="folder to write the package folder into (default: here)")
    new.set_defaults(func=_new_algorithm)

    check = sub.add_parser("check-algorithm", help="check an algorithm against the agent contract (exit 0 only if "
                                                   "every item passes)",
                           description="Items: builds; act shape and range; eval-mode determinism; state_dict round "
                                       "trip; finite metrics; resume bit for bit (a short run through the life "
                                       "cycle, cut back to a middle checkpoint and resumed). Overrides shrink a large "
                                       "agent, e.g. model_size=1.7M batch_size=32.")
    check.add_argument("name", help="an algorithm (`mbdpo-bench algorithms`)")
    check.add_argument("--task", default="cartpole-balance", help="task of the checks (default cartpole-balance)")
    check.add_argument("--steps", type=int, help="env steps of the resume run (default: two episodes)")
    check.add_argument("--device", default="cpu", help="cpu (default: bit for bit is promised on CPU) or cuda")
    check.add_argument("--seed", type=int, default=1)
    check.add_argument("--keep", metavar="DIR", help="write the runs here and keep them (default: a temporary "
                                                     "folder, removed if every item passes)")
    check.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides (agent and run keys)")
    check.set_defaults(func=_check_algorithm)

    train = sub.add_parser("train", help="train one algorithm on one task (resumes an interrupted run)",
                           description=TRAIN_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
                           epilog="algorithms: " + ", ".join(f"{n} ({e.summary})" for n, e in ALGORITHMS.items())
                           + "; and installed plug-ins (`mbdpo-bench algorithms`)")
    train.add_argument("--algo", default=None, help="algorithm name (default sac)")
    train.add_argument("--task", help="task name (`mbdpo-bench tasks`)")
    train.add_argument("--seed", type=int)
    train.add_argument("--steps", type=int, help="environment steps (action repeat included); offline: updates")
    train.add_argument("--offline", metavar="DATASET",
                       help="train offline on this multi-task dataset folder (config key offline.dataset): "
                            "gradient updates only, every task evaluated in its env every eval_every updates")
    train.add_argument("--results-dir", dest="results_dir", help="root of the run files (default results/)")
    train.add_argument("--device", help="auto, cpu or cuda")
    train.add_argument("--config", help="a YAML file of config keys (overridden by key=value arguments)")
    train.add_argument("--resume-non-finite", dest="resume_non_finite", action="store_true",
                       help="resume a run that stopped on non-finite values from its last finite checkpoint "
                            "(refused without this flag: on CPU it repeats the same computation)")
    train.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. agent.lr=1e-3")
    train.set_defaults(func=_train)

    evaluate = sub.add_parser("evaluate", help="re-evaluate a run's checkpoint on fresh evaluation seeds")
    evaluate.add_argument("run_dir", help="a run folder, results/runs/{name}/{task}/{seed}")
    evaluate.add_argument("--checkpoint", help="a checkpoint file (default: the newest usable one)")
    evaluate.add_argument("--episodes", type=int, help="episodes (default: the run's eval_episodes)")
    evaluate.add_argument("--device", default="auto")
    evaluate.set_defaults(func=_evaluate)

    validate = sub.add_parser("validate", help="run a learning check of config/checks/ and judge its curve")
    validate.add_argument("name", nargs="?", help="a check, e.g. tdmpc2-cartpole-cpu")
    validate.add_argument("--list", action="store_true", help="list the checks")
    validate.add_argument("--results-dir", dest="results_dir", help="root of the run files (default results/)")
    validate.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides (e.g. device=cpu)")
    validate.set_defaults(func=_validate)

    analyze = sub.add_parser("analyze", help="the paper's tables and figures from run files and/or released curves")
    analyze.add_argument("--runs", help="root of run folders {name}/{task}/{seed} (default results/runs when "
                                        "--published is not given)")
    analyze.add_argument("--published", help="released curves: per-algorithm folders of per-task CSVs")
    analyze.add_argument("--at-step", dest="at_step", type=int,
                         help="env step of the per-domain table (default: each domain's budget end)")
    analyze.add_argument("--out", required=True, help="output folder (tables/, figures/, summary.md)")
    analyze.add_argument("--algorithms", help="comma-separated algorithms to keep (default all)")
    analyze.add_argument("--candidate", default="mbdpo", help="algorithm of the probability of improvement")
    analyze.add_argument("--reps", type=int, default=2000, help="bootstrap replicates (default 2000)")
    analyze.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    analyze.add_argument("--no-per-task", dest="no_per_task", action="store_true", help="skip per-task figures")
    analyze.add_argument("--step-unit", dest="step_units", action="append", default=[], metavar="FOLDER=UNIT",
                         help="step unit of a released folder or algorithm, env or agent (repeatable or "
                              "comma-separated, e.g. mbdpo=env); default: analysis/units.py (mbdpo: agent, "
                              "TD-MPC2-era folders: env; FIDELITY.md D1)")
    analyze.add_argument("--both-units", dest="both_units", action="store_true",
                         help="analyse released curves under both readings of the mbdpo folders' step unit, into "
                              "OUT/units-agent/ and OUT/units-env/")
    analyze.add_argument("--efficiency", action="append", default=[], metavar="A:B",
                         help="sample-efficiency ratio: k such that B needs k× A's env steps for the same score "
                              "(repeatable; default mbdpo:tdmpc2 when both are present)")
    analyze.add_argument("--strict", action="store_true",
                         help="exit 1 when tables/problems.csv has a corrupt, non_finite, missing_step, incomplete or "
                              "missing row (without it, a warning)")
    analyze.add_argument("--scale", choices=["smoke", "paper"],
                         help="smoke: summary.md and every figure say 'smoke scale: not comparable to the paper's "
                              "numbers' (the workflow passes the config's analysis.scale; the embedded default is "
                              "smoke scale)")
    analyze.add_argument("--note", help="a line of text at the top of summary.md and of every figure")
    analyze.add_argument("--embedding", help="a multi-task checkpoint: also plot its task embeddings (t-SNE)")
    analyze.add_argument("--embedding-tasks", dest="embedding_tasks",
                         help="comma-separated task names of the embedding rows, in task-id order")
    analyze.add_argument("--latents", help="a latent export (mbdpo-bench export-latents --out FILE.npz): plot its "
                                           "latent trajectories (PCA) and, without --embedding, its task embeddings")
    analyze.set_defaults(func=_analyze)

    claims = sub.add_parser("claims", help="the claims ledger: each claim of the paper with a verdict, its "
                            "evidence and what would decide it (claims.md, claims.csv, figures/claims.png)")
    claims.add_argument("--runs", help="root of run folders (default results/runs when --published is not given)")
    claims.add_argument("--published", help="released curves (per-algorithm folders of per-task CSVs): read under "
                        "both step-unit readings of the mbdpo folders")
    claims.add_argument("--out", default="results/claims", help="output folder (default results/claims)")
    claims.add_argument("--reps", type=int, default=2000, help="bootstrap replicates (default 2000)")
    claims.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    claims.add_argument("--step-unit", dest="step_units", action="append", default=[], metavar="FOLDER=UNIT",
                        help="fix a released folder's step unit (env|agent); the uncertain mbdpo folders are "
                        "otherwise read both ways")
    claims.add_argument("--scale", choices=["smoke", "paper"], help="scale of own runs (default: inferred from "
                        "their budgets)")
    claims.add_argument("--note", help="a line of text at the top of claims.md and of the figure")
    claims.set_defaults(func=_claims)

    latents = sub.add_parser("export-latents", help="latent states z (encoder outputs) of rollouts or dataset "
                                                    "episodes and the task-embedding table of a multi-task "
                                                    "checkpoint, as .npz")
    latents.add_argument("run_dir", help="an offline run folder (results/runs/<algo>-offline/<dataset>/<seed>) or a "
                                         "fine-tuned one (results/runs/<algo>-finetune/<task>/<seed>)")
    latents.add_argument("--out", required=True, help="the .npz file to write")
    latents.add_argument("--checkpoint", help="a checkpoint file (default: the run's newest usable one)")
    latents.add_argument("--episodes", type=int, default=2, help="episodes per task (default 2)")
    latents.add_argument("--dataset", help="encode this dataset's episodes (up to --episodes per task) instead of "
                                           "rolling out the policy")
    latents.add_argument("--tasks", help="comma-separated tasks of the checkpoint's table (default all)")
    latents.add_argument("--seed", type=int, default=0, help="seed of the rollouts")
    latents.add_argument("--device", default="cpu", help="device of the agent (auto, cpu, cuda)")
    latents.set_defaults(func=_export_latents)

    doctor = sub.add_parser("doctor", help="installed versions, tasks available here, known-bad combinations")
    doctor.add_argument("--json", action="store_true")
    doctor.set_defaults(func=_doctor)

    collect = sub.add_parser("collect", help="an offline multi-task dataset from runs' replay buffers or policies")
    collect.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run folders results/runs/{name}/{task}/{seed}")
    collect.add_argument("--out", required=True, help="the dataset folder to write (must not exist)")
    collect.add_argument("--from", dest="source", choices=("buffer", "policy"), default="buffer",
                         help="buffer: the newest checkpoint's replay buffer; policy: roll out its policy")
    collect.add_argument("--episodes", type=int, help="policy: episodes per run (default 10); buffer: at most this "
                                                      "many of the newest whole episodes (default all)")
    collect.add_argument("--noise", type=float, default=0.0, help="policy: std of the Gaussian action noise")
    collect.add_argument("--seed", type=int, default=0, help="policy: seed of the rollouts and the noise")
    collect.add_argument("--device", default="cpu", help="policy: device of the agent (auto, cpu, cuda)")
    collect.set_defaults(func=_collect)

    dataset = sub.add_parser("dataset", help="offline datasets: info, import-tdmpc2")
    dataset_sub = dataset.add_subparsers(dest="dataset_command", required=True)
    info = dataset_sub.add_parser("info", help="tasks, episodes, transitions and returns per task")
    info.add_argument("path", help="a dataset folder (mbdpo-bench collect --out)")
    info.add_argument("--verify", action="store_true", help="check what training checks: the manifest, every file's "
                                                            "SHA-256, every episode, the cache, the tasks")
    info.add_argument("--json", action="store_true")
    info.set_defaults(func=_dataset_info)
    imp = dataset_sub.add_parser("import-tdmpc2", help="TD-MPC2's released mt30/mt80 chunk_*.pt files (a local "
                                                       "folder; never downloaded) into the native format")
    imp.add_argument("src_dir", help="folder of chunk_*.pt files")
    imp.add_argument("--out", required=True, help="the dataset folder to write (must not exist)")
    imp.add_argument("--task-set", dest="task_set", required=True, choices=("mt30", "mt80"))
    imp.add_argument("--dims", help="real sizes of tasks whose environment is not available here: "
                                    "TASK=OBS:ACTION,... or a JSON file {task: [obs, action]}")
    imp.set_defaults(func=_dataset_import_tdmpc2)
    return parser


def main(argv: list[str] | None = None) -> int:
    from algorithms.common.checkpoint import CheckpointError
    from algorithms.common.config import ConfigError
    from algorithms.common.health import NonFiniteLossError
    from algorithms.common.runfolder import RunError, RunInterrupted
    from analysis import AnalysisInputError
    from envs import SuiteNotInstalledError, UnknownTaskError
    from algorithms.commands.latents import LatentExportError
    from offline.dataset import DatasetError

    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # key=value overrides may also follow options (`train --task x --steps 5 seed=2 --device cpu lr=1`)
    if extra and (not hasattr(args, "overrides") or any("=" not in item or item.startswith("-") for item in extra)):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if extra:
        args.overrides = [*args.overrides, *extra]
    try:
        return args.func(args)
    except (ConfigError, RunError, CheckpointError, SuiteNotInstalledError, UnknownTaskError,
            NonFiniteLossError, AnalysisInputError, DatasetError, LatentExportError) as err:
        print(f"mbdpo-bench: error: {err}", file=sys.stderr)
        return 2
    except RunInterrupted:
        print("mbdpo-bench: interrupted; run the same command again to resume from the last checkpoint",
              file=sys.stderr)
        return 143
    except BrokenPipeError:  # e.g. `mbdpo-bench tasks | head`
        sys.stdout = None
        return 0
    except KeyboardInterrupt:
        print("mbdpo-bench: interrupted; run the same command again to resume from the last checkpoint",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
