"""The Snakemake workflow: the plan of each config, bad configs stopped before any job, a tiny grid end to end,
nothing to do the second time, and a killed `snakemake` that resumes and finishes."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow" / "scripts"))

import plan

SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "workflow" / "Snakefile")]


def load(name: str) -> dict:
    return yaml.safe_load((ROOT / "config" / name).read_text())


# ------------------------------------------------------------------------------------------------------- the plan

def test_default_config_plans_every_registered_algorithm_on_cheap_tasks():
    from algorithms.registry import ALGORITHMS

    runs = plan.expand(load("config.yaml"))
    assert {r.algo for r in runs} == set(ALGORITHMS)
    assert {r.task for r in runs} == {"cartpole-balance", "reacher-easy"} and {r.seed for r in runs} == {1, 2}
    assert len(runs) == len(ALGORITHMS) * 2 * 2 and all(r.steps == 4000 for r in runs)
    assert not [r for r in runs if plan.blocked(r)]
    plan.check_overrides(runs)  # every override key exists


def test_paper_grid_keeps_what_cannot_run_and_says_why():
    runs = plan.expand(load("paper.yaml"))
    assert len(runs) == 4 * 114 * 3 and {r.algo for r in runs} == {"mbdpo", "tdmpc2", "sac", "dreamerv3"}
    assert all(r.steps is None for r in runs)  # the registry's per-suite budgets
    reasons = {r.key: plan.blocked(r) for r in runs}
    assert reasons["mbdpo/cartpole-balance/1"] is None and reasons["mbdpo/cheetah-run-pixels/2"] is None
    assert reasons["dreamerv3/mw-assembly/3"] is None and reasons["dreamerv3/myo-reach/1"] is None
    blocked = {k for k, why in reasons.items() if why}
    assert blocked == {r.key for r in runs if r.task in plan.MANISKILL2_TASKS}  # only ManiSkill2 here
    assert all("maniskill2" in reasons[k] for k in blocked)


def test_an_unimplemented_algorithm_stays_in_the_grid(monkeypatch):
    monkeypatch.setattr(plan, "PLANNED_ALGORITHMS", {"ppo": "PPO is not implemented yet"})
    config = load("config.yaml")
    config["experiments"][0]["algorithms"] = ["sac", "ppo"]
    runs = plan.expand(config)
    assert {r.algo for r in runs} == {"sac", "ppo"}
    assert {plan.blocked(r) for r in runs if r.algo == "ppo"} == {"algorithm 'ppo': PPO is not implemented yet"}


def test_ablation_grid_is_one_run_per_distinct_setting_task_seed():
    config = load("ablations.yaml")
    runs = plan.expand(config)
    sweeps = config["sweeps"]
    tasks, seeds = len(sweeps[0]["tasks"]), len(sweeps[0]["seeds"])
    distinct = sum(len(s["values"]) for s in sweeps) - (len(sweeps) - 1)  # the default run is shared
    assert len(runs) == distinct * tasks * seeds
    names = {r.name for r in runs}
    assert {"mbdpo-ablation-default", "mbdpo-ablation-eta0", "mbdpo-ablation-T5", "mbdpo-ablation-N64"} <= names
    default = next(r for r in runs if r.name == "mbdpo-ablation-default")
    assert "agent.eta" not in dict(default.overrides)
    assert dict(next(r for r in runs if r.name == "mbdpo-ablation-T10").overrides)["agent.diffusion_steps"] == 10


def test_o2o_config_plans_finetune_and_scratch_after_pretraining():
    """config/o2o.yaml: per algorithm one pretraining run on the 70 tasks' dataset, then per held-out task and seed a
    fine-tuning run (init.checkpoint = the pretraining folder, waiting for its marker) and a from-scratch twin."""
    config = load("o2o.yaml")
    pretraining = plan.expand_offline(config)
    assert [r.key for r in pretraining] == ["mbdpo-o2o-pretrain/mt80-minus-finetune/1",
                                            "tdmpc2-o2o-pretrain/mt80-minus-finetune/1"]
    runs = plan.expand(config)
    assert len(runs) == 2 * 10 * 3 * 2  # algorithms x held-out tasks x seeds x (fine-tune, scratch)
    finetune = next(r for r in runs if r.key == "mbdpo-finetune/hopper-hop/2")
    scratch = next(r for r in runs if r.key == "mbdpo-scratch/hopper-hop/2")
    folder = "results/runs/mbdpo-o2o-pretrain/mt80-minus-finetune/1"
    assert finetune.setting("init.checkpoint") == folder and finetune.after == f"{folder}/complete.json"
    assert scratch.after is None and dict(scratch.overrides) == {k: v for k, v in finetune.overrides
                                                                 if k != "init.checkpoint"}
    smoke = load("o2o-smoke.yaml")
    finetune, scratch = plan.expand(smoke)
    assert [finetune.key, scratch.key] == ["mbdpo-finetune/reacher-easy/1", "mbdpo-scratch/reacher-easy/1"]
    # the from-scratch run alone seeds (shortened to fit the budget); fine-tuning acts from its first step
    assert scratch.setting("seed_steps") == 250 and finetune.setting("seed_steps") is None
    with pytest.raises(plan.PlanError, match="reacher-easy both pretrained on and held out"):
        plan.expand({"o2o": {**smoke["o2o"], "pretrain_tasks": ["walker-walk", "reacher-easy"]}})


def test_scaling_config_plans_offline_runs():
    config = load("scaling.yaml")
    assert plan.expand(config) == []
    runs = plan.expand_offline(config)
    assert len(runs) == 2 * 5 * 2  # algorithms x presets x datasets, one seed
    assert {r.dataset_name for r in runs} == {"mt30", "mt80"} and all(r.steps == 10_000_000 for r in runs)
    assert "mbdpo-offline-340M/mt80/1" in {r.key for r in runs}


def test_scaling_smoke_config_writes_its_dataset_and_ends_in_the_offline_analysis(tmp_path):
    config = load("scaling-smoke.yaml")
    runs = plan.expand_offline(config)
    assert sorted(r.key for r in runs) == sorted(f"{a}-offline-{s}/scaling-smoke/1" for a in ("mbdpo", "tdmpc2")
                                                 for s in ("1.7M", "6M"))
    assert plan.random_datasets(config) == {"data/offline/scaling-smoke": {
        "tasks": ["cartpole-balance", "reacher-easy", "walker-walk"], "episodes": 2, "seed": 0}}
    proc = snakemake(tmp_path, "-n", "--cores", "2", "--configfile", str(ROOT / "config" / "scaling-smoke.yaml"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    for rule, count in (("random_dataset", 1), ("train_offline", 4), ("analyze_offline", 1)):
        assert any(line.split() == [rule, str(count)] for line in out.splitlines()), out[-3000:]
    assert "mbdpo-offline-6M on scaling-smoke: about" in out  # the plan prints each family's memory estimate


@pytest.mark.parametrize("change, message", [
    ({"random_datasets": {"elsewhere": {"tasks": ["walker-walk"], "episodes": 1}}}, "not one of offline.datasets"),
    ({"random_datasets": {"scaling-smoke": {"tasks": ["walker-wlak"], "episodes": 1}}}, "walker-wlak"),
    ({"random_datasets": {"scaling-smoke": {"tasks": ["walker-walk"], "episodes": 0}}}, "episodes per task"),
])
def test_random_dataset_bad_values_name_themselves(change, message):
    config = load("scaling-smoke.yaml")
    config["offline"].update(change)
    with pytest.raises(plan.PlanError, match=message):
        plan.random_datasets(config)


@pytest.mark.parametrize("change, message", [
    ({"algorithms": ["mbpdo"]}, r"unknown algorithm 'mbpdo'.*did you mean mbdpo"),
    ({"tasks": ["cartpole-balanse"]}, r"cartpole-balanse.*cartpole-balance"),
    ({"steps": -5}, r"steps must be a positive integer.*-5"),
    ({"seeds": []}, r"seeds must be a non-empty list"),
    ({"tasks": ["suite:atari"]}, r"unknown suite 'atari'"),
])
def test_bad_values_name_themselves(change, message):
    config = load("config.yaml")
    config["experiments"][0].update(change)
    with pytest.raises(plan.PlanError, match=message):
        plan.expand(config)


def test_bad_override_key_stops_the_plan():
    config = load("config.yaml")
    config["experiments"][0]["overrides"]["sac"] = {"agent.nope": 1}
    with pytest.raises(plan.PlanError, match="nope"):
        plan.check_overrides(plan.expand(config))


def test_resources_scale_with_budget_preset_and_device():
    small = plan.Run("tdmpc2", "tdmpc2", "cartpole-balance", 1, 100_000, (("agent.model_size", "1.7M"),))
    big = plan.Run("tdmpc2", "tdmpc2", "cartpole-balance", 1, 1_000_000, (("agent.model_size", "1.7M"),))
    huge = plan.Run("tdmpc2", "tdmpc2", "cartpole-balance", 1, 1_000_000, (("agent.model_size", "340M"),))
    pixels = plan.Run("tdmpc2", "tdmpc2", "cartpole-balance", 1, 1_000_000, ())
    r_small, r_big = plan.resources(small, gpu=True), plan.resources(big, gpu=True)
    assert r_big["runtime"] > r_small["runtime"] and r_big["mem_mb"] > r_small["mem_mb"]
    assert plan.resources(huge, gpu=True)["runtime"] > r_big["runtime"]
    assert plan.resources(huge, gpu=True)["mem_mb"] > r_big["mem_mb"]
    assert plan.resources(big, gpu=False)["runtime"] > r_big["runtime"]
    assert r_big["gpu"] == 1 and plan.resources(big, gpu=False)["gpu"] == 0
    assert plan.resources(pixels, gpu=True, threads=3)["threads"] == 3


# ------------------------------------------------------------------------------------- packing runs onto one GPU

def _run(algo, task, seed, name=None, **overrides):
    return plan.Run(name or algo, algo, task, seed, 1000, tuple(sorted(overrides.items())))


def test_packs_group_runs_of_one_algorithm_and_preset_at_most_k(monkeypatch):
    import hashlib

    monkeypatch.setattr(plan, "PLANNED_ALGORITHMS", {"ppo": "PPO is not implemented yet"})
    ms2 = plan.MANISKILL2_TASKS[0]
    sac = [_run("sac", task, seed) for task in ("cartpole-balance", "reacher-easy") for seed in (1, 2, 3)]
    small = [_run("tdmpc2", "cartpole-balance", seed, "tdmpc2-1.7M", **{"agent.model_size": "1.7M"}) for seed in (1, 2)]
    large = [_run("tdmpc2", "cartpole-balance", seed, "tdmpc2-6M", **{"agent.model_size": "6M"}) for seed in (1, 2)]
    left_out = [_run("sac", ms2, 1), _run("sac", ms2, 2), _run("ppo", "cartpole-balance", 1),
                _run("ppo", "cartpole-balance", 2)]
    pixels = [_run("sac", "cheetah-run-pixels", seed) for seed in (1, 2)]
    runs = [*left_out, *large, *sac, *pixels, *small]
    packs = plan.packs(runs, 4, None)
    assert all(2 <= len(p.runs) <= 4 for p in packs)
    for p in packs:  # one algorithm, one preset, state or pixels per pack
        assert len({(r.algo, r.setting("agent.model_size"), r.task.endswith("-pixels")) for r in p.runs}) == 1, p.keys
    assert [p.keys for p in packs if "pixels" in p.keys[0]] == [[r.key for r in pixels]]
    packed = [k for p in packs for k in p.keys]
    assert len(packed) == len(set(packed)) == 6 + 2 + 2 + 2
    assert not set(packed) & {r.key for r in left_out}  # ManiSkill2 (its own interpreter) and blocked runs
    assert sorted(len(p.runs) for p in packs if p.keys[0].startswith("sac/") and "pixels" not in p.keys[0]) == [2, 4]
    # deterministic and stable: the order of the grid does not matter, the id follows the members only
    again = plan.packs(list(reversed(runs)), 4, None)
    assert [(p.id, p.keys) for p in again] == [(p.id, p.keys) for p in packs]
    for p in packs:
        digest = hashlib.sha256("\n".join(sorted(p.keys)).encode()).hexdigest()[:10]
        assert p.id == f"pack-{digest}"
    assert len({p.id for p in packs}) == len(packs)
    # a group's leftover single run is no pack (it keeps its own train job); k = 1 packs nothing
    three = plan.packs(sac[:3], 2, None)
    assert [p.keys for p in three] == [["sac/cartpole-balance/1", "sac/cartpole-balance/2"]]
    assert plan.packs(runs, 1, None) == []


def test_pack_resources_sum_the_members_and_stretch_the_slowest():
    short = plan.Run("sac", "sac", "cartpole-balance", 1, 100_000)
    long = plan.Run("sac", "sac", "cartpole-balance", 2, 1_000_000)
    one, two = plan.resources(short, gpu=True, threads=2), plan.resources(long, gpu=True, threads=2)
    res = plan.pack_resources(plan.Pack("pack-x", (short, long)), threads=2)
    assert res == {"gpu": 1, "threads": 4, "mem_mb": one["mem_mb"] + two["mem_mb"],
                   "runtime": math.ceil(two["runtime"] * 1.5)}
    third = plan.Run("sac", "sac", "cartpole-balance", 3, 100_000)
    assert plan.pack_resources(plan.Pack("pack-y", (short, long, third)), 2)["runtime"] == two["runtime"] * 2


@pytest.mark.parametrize("gpu, value, message", [
    (True, 0, r"runs_per_gpu: .*integer >= 1.*got 0"),
    (True, -1, r"runs_per_gpu: .*integer >= 1.*got -1"),
    (True, "two", r"runs_per_gpu: .*integer >= 1.*got 'two'"),
    (False, 2, r"runs_per_gpu: 2 .*needs gpu: true.*set gpu: true, or runs_per_gpu: 1"),
])
def test_runs_per_gpu_bad_values_name_themselves(gpu, value, message):
    config = {**load("config.yaml"), "gpu": gpu, "runs_per_gpu": value}
    with pytest.raises(plan.PlanError, match=message):
        plan.expand(config)
    assert len(plan.expand({**config, "runs_per_gpu": 1})) > 0  # 1 is valid with or without a GPU


# -------------------------------------------------------------------------------------------- through Snakemake

def snakemake(workdir: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([*SNAKEMAKE, "-d", str(workdir), *args], capture_output=True, text=True, timeout=timeout,
                          check=False, env={**os.environ, "PYTHONHASHSEED": "0"})


def tiny_config(tmp_path: Path, **experiment) -> Path:
    config = {
        "results_dir": str(tmp_path / "results"), "device": "cpu", "gpu": False, "threads_per_run": 1,
        "experiments": [{"algorithms": ["sac"], "tasks": ["cartpole-balance"], "seeds": [1], "steps": 1000,
                         "overrides": {"all": {"eval_every": 500, "eval_episodes": 1, "seed_steps": 200,
                                               "checkpoint_every": 500, "agent.batch_size": 32,
                                               "agent.hidden_dim": 32}},
                         **experiment}],
        "sweeps": [],
        "analysis": {"out": str(tmp_path / "results" / "analysis"), "reps": 50, "per_task": False},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize("edit, message", [
    (lambda c: c.update(unknown_key=1), "unknown_key"),
    (lambda c: c["experiments"][0].update(steps=-10), "-10"),
    (lambda c: c["experiments"][0].update(algorithms=["ppo"]), "unknown algorithm 'ppo'"),
    (lambda c: c["experiments"][0].update(tasks=["walker-wlak"]), "walker-wlak"),
    (lambda c: c.update(runs_per_gpu=2), "runs_per_gpu: 2 packs runs onto one GPU job, which needs gpu: true"),
])
def test_bad_config_fails_before_any_job(tmp_path, edit, message):
    path = tiny_config(tmp_path)
    config = yaml.safe_load(path.read_text())
    edit(config)
    path.write_text(yaml.safe_dump(config))
    proc = snakemake(tmp_path, "--cores", "1", "--configfile", str(path))
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr
    assert not (tmp_path / "results" / "runs").exists()


def test_validation_config_needs_the_released_curves(tmp_path):
    proc = snakemake(tmp_path, "-n", "--cores", "1", "--configfile", str(ROOT / "config" / "validate.yaml"))
    assert proc.returncode != 0 and "validate.published" in proc.stdout + proc.stderr


def test_tiny_grid_end_to_end_then_nothing_to_do(tmp_path):
    from analysis import synthetic

    path = tiny_config(tmp_path, seeds=[1, 2])
    published = synthetic.write_published(tmp_path / "published", synthetic.curves(["sac"], ["cartpole-balance"]))
    config = yaml.safe_load(path.read_text())
    config["validate"] = {"published": str(published), "at_steps": [1000], "margin": 100.0,
                          "out": str(tmp_path / "results" / "analysis" / "validate" / "comparison.csv")}
    path.write_text(yaml.safe_dump(config))
    proc = snakemake(tmp_path, "--cores", "2", "--configfile", str(path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = tmp_path / "results"
    for seed in (1, 2):
        marker = json.loads((results / "runs" / "sac" / "cartpole-balance" / str(seed) / "complete.json").read_text())
        assert marker["status"] == "finished" and marker["env_steps_done"] == 1000
    table = (results / "analysis" / "tables" / "per_domain.csv").read_text()
    assert table.startswith("algorithm,domain,n_tasks,step,mean")
    assert (results / "analysis" / "figures" / "aggregate_curves.png").read_bytes()[:4] == b"\x89PNG"
    comparison = (results / "analysis" / "validate" / "comparison.csv").read_text().splitlines()
    assert comparison[0].startswith("algorithm,task,step,ours_mean") and comparison[1].startswith("sac,cartpole")
    assert comparison[1].endswith(",True")  # margin 100: any learning run passes
    again = snakemake(tmp_path, "--cores", "2", "--configfile", str(path))
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr
    report = tmp_path / "report.html"
    made = snakemake(tmp_path, "--configfile", str(path), "--report", str(report))
    assert made.returncode == 0, made.stderr[-3000:]
    html = report.read_text(errors="replace")
    assert "aggregate_curves.png" in html and "stratified-bootstrap" in html  # figures with their captions


def packed_config(tmp_path: Path, seeds: list[int]) -> Path:
    path = tiny_config(tmp_path, seeds=seeds)
    config = yaml.safe_load(path.read_text())
    config.update(gpu=True, device="cpu", runs_per_gpu=2)
    path.write_text(yaml.safe_dump(config))
    return path


def jobs_of(out: str, rule: str) -> list[str]:
    """The dry run's job blocks of one rule."""
    return [block for block in out.split("\nrule ")[1:] if block.startswith(f"{rule}:")]


def test_packed_dry_run_asks_for_packs_not_their_runs(tmp_path):
    path = packed_config(tmp_path, [1, 2, 3])
    proc = snakemake(tmp_path, "-n", "--cores", "2", "--configfile", str(path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    packs = jobs_of(out, "train_pack")
    (pack,) = plan.packs(plan.expand(yaml.safe_load(path.read_text())), 2)
    assert len(packs) == 1 and f"packs/{pack.id}/complete.json" in packs[0] and "gpu=1" in packs[0]
    assert "cpus_per_task=2" in packs[0] and "threads: 2" in packs[0]  # both members' threads
    assert pack.keys == ["sac/cartpole-balance/1", "sac/cartpole-balance/2"]
    trains = jobs_of(out, "train")  # the leftover seed alone; no train job for a packed run
    assert len(trains) == 1 and "runs/sac/cartpole-balance/3/complete.json" in trains[0] and "gpu=1" in trains[0]
    (analyze,) = jobs_of(out, "analyze")
    inputs = next(line for line in analyze.splitlines() if line.strip().startswith("input:"))
    assert inputs.count(f"packs/{pack.id}/complete.json") == 1  # one input for both runs of the pack


def test_packed_tiny_grid_end_to_end(tmp_path):
    path = packed_config(tmp_path, [1, 2])
    start = time.time()
    proc = snakemake(tmp_path, "--cores", "2", "--resources", "gpu=1", "--configfile", str(path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = tmp_path / "results"
    (pack,) = plan.packs(plan.expand(yaml.safe_load(path.read_text())), 2)
    marker = json.loads((results / "packs" / pack.id / "complete.json").read_text())
    assert marker["pack"] == pack.id and [m["run"] for m in marker["members"]] == pack.keys
    assert all(m["status"] == "finished" and m["exit_code"] == 0 for m in marker["members"])
    assert 0 < marker["wall_time_s"] < time.time() - start
    for key in pack.keys:
        run = json.loads((results / "runs" / key / "run.json").read_text())
        assert run["status"] == "finished" and run["env_steps_done"] == 1000
        done = json.loads((results / "runs" / key / "complete.json").read_text())
        assert done == {"run": key, "status": "finished", "env_steps_done": 1000,
                        "config_hash": run["config_hash"], "wall_time_s": run["wall_time_s"]}
        assert "finished" in (results / "logs" / "train" / f"{key}.log").read_text()  # each run its own log
    assert (results / "analysis" / "tables" / "per_domain.csv").exists()
    again = snakemake(tmp_path, "--cores", "2", "--resources", "gpu=1", "--configfile", str(path))
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr


def test_sigterm_to_a_pack_interrupts_every_member(tmp_path):
    """A scheduler's time limit signals the pack's job: each member gets SIGTERM, marks its run interrupted (so the
    next job resumes it), no marker is written, and the job fails naming each run and its log."""
    results = tmp_path / "results"
    overrides = {"eval_every": 1500, "eval_episodes": 1, "seed_steps": 200, "checkpoint_every": 500,
                 "agent.batch_size": 32, "agent.hidden_dim": 32}
    members = [dict(name="sac", algo="sac", task="cartpole-balance", seed=seed, steps=3000, overrides=overrides,
                    threads=1, log=str(results / "logs" / "train" / "sac" / "cartpole-balance" / f"{seed}.log"),
                    marker=str(results / "runs" / "sac" / "cartpole-balance" / str(seed) / "complete.json"))
               for seed in (1, 2)]
    code = ("import json, sys\nfrom pathlib import Path\n"
            f"sys.path.insert(0, {str(ROOT / 'workflow' / 'scripts')!r})\nimport runjob, train_pack\n"
            f"sys.exit(train_pack.train_pack('pack-test', json.loads(sys.argv[1]), {str(results)!r}, 'cpu', 2, "
            f"Path({str(results / 'packs' / 'pack-test' / 'complete.json')!r}), sys.stdout, runjob, "
            f"Path({str(ROOT)!r})))")
    proc = subprocess.Popen([sys.executable, "-c", code, json.dumps(members)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    run_dirs = [results / "runs" / "sac" / "cartpole-balance" / str(seed) for seed in (1, 2)]
    try:
        deadline = time.time() + 300
        while not all(list((d / "checkpoints").glob("*.sha256")) for d in run_dirs) and time.time() < deadline:
            time.sleep(0.5)
        assert all(list((d / "checkpoints").glob("*.sha256")) for d in run_dirs), "no checkpoints before the deadline"
        proc.send_signal(signal.SIGTERM)  # the pack's process alone: it passes the signal on
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 1, out + err
    assert "pack-test: 2 of 2 run(s) did not finish" in err
    for member, run_dir in zip(members, run_dirs):
        info = json.loads((run_dir / "run.json").read_text())
        assert info["status"] == "interrupted" and info["env_steps_done"] < 3000
        assert f"{run_dir.relative_to(results / 'runs')} (exit 143, status 'interrupted'; log {member['log']})" in err
        assert not (run_dir / "complete.json").exists()
    assert not (results / "packs").exists()


def test_killed_snakemake_resumes_and_finishes(tmp_path):
    path = tiny_config(tmp_path, steps=3000)
    config = yaml.safe_load(path.read_text())
    config["experiments"][0]["overrides"]["all"].update(checkpoint_every=500, eval_every=1500)
    path.write_text(yaml.safe_dump(config))
    run_dir = tmp_path / "results" / "runs" / "sac" / "cartpole-balance" / "1"
    proc = subprocess.Popen([*SNAKEMAKE, "-d", str(tmp_path), "--cores", "1", "--configfile", str(path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 300
        while not list((run_dir / "checkpoints").glob("*.sha256")) and time.time() < deadline:
            time.sleep(0.5)
        assert list((run_dir / "checkpoints").glob("*.sha256")), "no checkpoint before the deadline"
        os.killpg(proc.pid, signal.SIGKILL)  # the whole tree, as a scheduler's hard kill would
    finally:
        proc.wait(timeout=60)
    assert not (run_dir / "complete.json").exists()  # a killed run never looks done
    before = json.loads((run_dir / "run.json").read_text())
    assert before["status"] == "running" and before["env_steps_done"] < 3000
    unlock = snakemake(tmp_path, "--unlock", "--configfile", str(path))  # a hard kill leaves the lock behind
    assert unlock.returncode == 0, unlock.stderr[-2000:]
    done = snakemake(tmp_path, "--cores", "1", "--configfile", str(path), "--rerun-incomplete")
    assert done.returncode == 0, done.stderr[-3000:]
    after = json.loads((run_dir / "run.json").read_text())
    assert after["status"] == "finished" and after["env_steps_done"] == 3000 and after["resumed"]
    steps = [int(line.split(",")[0]) for line in (run_dir / "eval.csv").read_text().splitlines()[1:]]
    assert steps == [0, 2000, 3000]  # at the first episode end past each 1500: nothing lost, nothing repeated
