"""Step units of curve sources (analysis/units.py, FIDELITY.md D1) and the sample-efficiency ratio
(analysis/efficiency.py), on small synthetic curves whose true factor is known.

The curves are built in env steps: A's task curve is level·(1 - exp(-rate·s)) and B's is A's stretched by k_true in
x, B(s) = A(s / k_true), so B needs k_true times A's env steps; seed noise on top. A few hundred bootstrap
replicates keep the file to seconds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from algorithms.cli import main
from analysis import efficiency as E
from analysis import synthetic
from analysis import units as U
from analysis.load import EVAL_COLUMNS, AnalysisInputError, load_published
from analysis.report import analyze, analyze_both_units
from envs.registry import TASKS

REPS = 200
DMC = ["cartpole-swingup", "walker-walk", "cheetah-run", "hopper-stand", "finger-spin"]
MYO = ["myo-reach", "myo-pose", "myo-key-turn"]

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


def stretched(tasks: list[str], k_true: float, noise: float = 2.0, seeds=(1, 2, 3), spacing: int = 100_000,
              seed: int = 0, a: str = "mbdpo", b: str = "tdmpc2") -> pd.DataFrame:
    """A tidy evaluation table (env steps) of ``a`` and of ``b`` = ``a`` stretched by ``k_true`` in x."""
    rng = np.random.default_rng(seed)
    rows = []
    for task in tasks:
        spec = TASKS[task]
        level, rate = rng.uniform(60, 95), rng.uniform(3, 8) / spec.budget
        steps = np.arange(0, spec.budget + 1, spacing)
        for alg, k in ((a, 1.0), (b, k_true)):
            for s in seeds:
                score = level * (1 - np.exp(-rate * steps / k)) + rng.normal(0, noise, len(steps))
                rows += [{"source": "test", "algorithm": alg, "task": task, "suite": spec.suite,
                          "domain": spec.domain, "seed": s, "step": int(st), "return": v * 10, "success": np.nan,
                          "score": float(v), "budget": spec.budget, "config_hash": "", "path": "",
                          "source_step": int(st), "step_unit": "env"} for st, v in zip(steps, score)]
    return pd.DataFrame(rows, columns=EVAL_COLUMNS)


def row(table: pd.DataFrame, domain: str) -> pd.Series:
    return table.set_index("domain").loc[domain]


# ------------------------------------------------------------------------------------------------- step units

def test_parse_step_units_forms_and_errors():
    assert U.parse_step_units(["mbdpo=env", "sac=agent, tdmpc=env"]) == {"mbdpo": "env", "sac": "agent",
                                                                          "tdmpc": "env"}
    assert U.parse_step_units({"mbdpo": "env"}) == {"mbdpo": "env"}
    with pytest.raises(AnalysisInputError, match=r"'steps'.*valid: env, agent"):
        U.parse_step_units(["mbdpo=steps"])
    with pytest.raises(AnalysisInputError, match="malformed value 'mbdpo'"):
        U.parse_step_units(["mbdpo"])
    with pytest.raises(AnalysisInputError, match="twice"):
        U.parse_step_units(["mbdpo=env", "mbdpo=agent"])


def test_declared_units_and_the_reported_default():
    assert U.resolve_unit("mbdpo")[0] == U.resolve_unit("mbdpo-pixels")[0] == "agent"
    for folder in ("tdmpc2", "tdmpc", "sac", "dreamerv3", "tdmpc2-pixels"):
        assert U.resolve_unit(folder) == ("env", "declared"), folder
    assert "uncertain" in U.resolve_unit("mbdpo")[1]
    assert U.resolve_unit("mbdpo", {"mbdpo": "env"}) == ("env", "override")
    assert U.resolve_unit("mbdpo-pixels", {"mbdpo": "env"}) == ("env", "override")  # an algorithm covers its pixels
    unit, origin = U.resolve_unit("newalgo")
    assert unit == U.DEFAULT_PUBLISHED_UNIT == "env" and origin.startswith("default")


def test_load_published_converts_agent_steps_with_each_tasks_action_repeat(tmp_path):
    table = synthetic.curves(["mbdpo", "tdmpc2", "newalgo"], ["cartpole-balance", "myo-reach"], points=5)
    synthetic.write_published(tmp_path, table)
    raw = pd.read_csv(tmp_path / "mbdpo" / "cartpole-balance.csv")
    assert raw["step"].max() == TASKS["cartpole-balance"].budget // 2  # written as agent steps, as released
    rs = load_published(tmp_path)
    ev = rs.evals
    mb = ev[ev["algorithm"] == "mbdpo"]
    assert set(mb["step_unit"]) == {"agent"}
    for task, repeat in (("cartpole-balance", 2), ("myo-reach", 1)):
        sub = mb[mb["task"] == task]
        assert TASKS[task].action_repeat == repeat
        assert (sub["step"] == sub["source_step"] * repeat).all(), task
    td = ev[ev["algorithm"] == "tdmpc2"]
    assert (td["step"] == td["source_step"]).all() and set(td["step_unit"]) == {"env"}
    # the round trip puts mbdpo back on the table's env steps
    assert sorted(mb.loc[mb["task"] == "cartpole-balance", "step"].unique()) == \
        sorted(table.loc[table["task"] == "cartpole-balance", "step"].unique())
    # an undeclared folder is read as env steps, and that is reported, not silent
    assumed = rs.problems[rs.problems["kind"] == "step_unit_assumed"]
    assert list(assumed["algorithm"]) == ["newalgo"]
    units = rs.step_units.set_index("folder")
    assert units.loc["newalgo", "step_unit"] == "env" and units.loc["newalgo", "origin"].startswith("default")
    assert units.loc["mbdpo", "reading"] == "agent steps × action repeat"


def test_step_unit_override_and_unknown_folder(tmp_path):
    synthetic.write_published(tmp_path, synthetic.curves(["mbdpo", "tdmpc2"], ["cartpole-balance"], points=5))
    ev = load_published(tmp_path, step_units=["mbdpo=env"]).evals
    mb = ev[ev["algorithm"] == "mbdpo"]
    assert (mb["step"] == mb["source_step"]).all() and set(mb["step_unit"]) == {"env"}
    with pytest.raises(AnalysisInputError, match="'mbdp'.*folders: mbdpo, tdmpc2"):
        load_published(tmp_path, step_units=["mbdp=env"])


@pytest.mark.parametrize("argv, message", [
    (["--step-unit", "mbdpo=steps"], "unknown step unit 'steps'; valid: env, agent"),
    (["--step-unit", "mbdpo"], "malformed value 'mbdpo'"),
    (["--efficiency", "mbdpo-tdmpc2"], "malformed value 'mbdpo-tdmpc2'"),
    (["--efficiency", "mbdpo:sac"], "no evaluations of 'sac'"),
    (["--both-units", "--step-unit", "mbdpo=env"], "do not also set --step-unit for mbdpo"),
])
def test_cli_bad_unit_and_pair_values_are_one_clear_error(tmp_path, capsys, argv, message):
    synthetic.write_published(tmp_path / "pub", synthetic.curves(["mbdpo", "tdmpc2"], ["cartpole-balance"], points=5))
    code = main(["analyze", "--published", str(tmp_path / "pub"), "--out", str(tmp_path / "out"), *argv])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err


# ------------------------------------------------------------------------------------------- efficiency ratio

def test_recovers_a_known_stretch_and_the_ci_covers_it():
    evals = stretched(DMC, k_true=2.0)
    table, curves = E.sample_efficiency_ratio(evals, "mbdpo", "tdmpc2", reps=REPS)
    r = row(table, "DMControl")
    assert r["k"] == pytest.approx(2.0, rel=0.06)
    assert r["low"] <= 2.0 <= r["high"] and r["high"] / r["low"] < 1.6
    assert r["n_tasks"] == len(DMC) and r["runs_a"] == r["runs_b"] == 3 * len(DMC)
    assert r["steps_from"] == 200_000 and r["steps_to"] == 4_000_000 and "edge" not in r["notes"]
    # B drawn at step / k lies on A
    dmc = curves[curves["domain"] == "DMControl"]
    a = dmc[dmc["curve"] == "a"].set_index("step")["value"]
    b_resc = dmc[dmc["curve"] == "b_rescaled"]
    on_a = np.interp(b_resc["step"], a.index, a.to_numpy())
    assert np.sqrt(np.mean((b_resc["value"].to_numpy() - on_a) ** 2)) < 3.0


def test_direction_b_faster_gives_k_below_one():
    table, _ = E.sample_efficiency_ratio(stretched(DMC, k_true=0.5), "mbdpo", "tdmpc2", reps=REPS)
    assert row(table, "DMControl")["k"] == pytest.approx(0.5, rel=0.06)
    # swapping A and B inverts k
    table, _ = E.sample_efficiency_ratio(stretched(DMC, k_true=0.5), "tdmpc2", "mbdpo", reps=REPS)
    assert row(table, "DMControl")["k"] == pytest.approx(2.0, rel=0.06)


def test_identical_curves_give_k_one():
    evals = stretched(DMC + MYO, k_true=1.0, noise=0.0)
    b = evals[evals["algorithm"] == "tdmpc2"]
    evals = pd.concat([b.assign(algorithm="mbdpo"), b])  # the very same runs under two names
    table, _ = E.sample_efficiency_ratio(evals, "mbdpo", "tdmpc2", reps=REPS)
    for domain in ("DMControl", "MyoSuite", "All"):
        r = row(table, domain)
        assert r["k"] == pytest.approx(1.0, abs=1e-9), domain
        assert r["low"] <= 1.0 <= r["high"], domain


def test_per_domain_and_overall_rows():
    evals = pd.concat([stretched(DMC, k_true=2.0), stretched(MYO, k_true=1.5, seed=1)])
    table, _ = E.sample_efficiency_ratio(evals, "mbdpo", "tdmpc2", reps=REPS)
    assert list(table["domain"]) == ["DMControl", "MyoSuite", "All"]
    assert row(table, "MyoSuite")["k"] == pytest.approx(1.5, rel=0.08)
    assert row(table, "All")["n_tasks"] == len(DMC) + len(MYO)
    assert row(table, "All")["steps_to"] <= 2_000_000  # MyoSuite's curves end at 2M: the overall mean stops there


def test_unit_of_bs_source_changes_k_by_the_action_repeat(tmp_path):
    """B's folder read as agent steps (declared) vs env steps: on repeat-2 tasks k halves; MyoSuite (repeat 1)
    is the same under both readings."""
    tidy = pd.concat([stretched(DMC, k_true=2.0), stretched(MYO, k_true=2.0, seed=1)])
    # A = tdmpc2 (env), B = mbdpo (agent-step folder, as released); true k in env steps = 2
    tidy = tidy.assign(algorithm=tidy["algorithm"].map({"mbdpo": "tdmpc2", "tdmpc2": "mbdpo"}))
    synthetic.write_published(tmp_path, tidy)
    ks = {}
    for unit in ("agent", "env"):
        evals = load_published(tmp_path, step_units={"mbdpo": unit}).evals
        table, _ = E.sample_efficiency_ratio(evals, "tdmpc2", "mbdpo", reps=REPS)
        ks[unit] = table.set_index("domain")["k"]
    assert ks["agent"]["DMControl"] == pytest.approx(2.0, rel=0.06)
    assert ks["agent"]["DMControl"] / ks["env"]["DMControl"] == pytest.approx(2.0, rel=0.06)
    assert ks["agent"]["MyoSuite"] == ks["env"]["MyoSuite"]


def test_no_k_without_overlap_or_rise():
    evals = stretched(DMC[:2], k_true=1.0)
    flat = evals.assign(score=np.where(evals["algorithm"] == "tdmpc2", 50.0, evals["score"]))
    table, _ = E.sample_efficiency_ratio(flat, "mbdpo", "tdmpc2", reps=REPS, overall=False)
    assert np.isnan(row(table, "DMControl")["k"]) and "rises by < 5" in row(table, "DMControl")["notes"]
    # B evaluated only from 3M on, k grid [1/2, 2]: A's curve (to 4M) at s/k never meets 5 of B's steps early
    late = evals[(evals["algorithm"] == "mbdpo") | (evals["step"] >= 3_000_000)]
    late = late[(late["algorithm"] == "tdmpc2") | (late["step"] <= 1_000_000)]
    table, _ = E.sample_efficiency_ratio(late, "mbdpo", "tdmpc2", reps=REPS, ks=E.k_grid(0.5, 2.0), min_rise=0,
                                         overall=False)
    r = row(table, "DMControl")
    assert np.isnan(r["k"]) and "overlap too small" in r["notes"]
    table, _ = E.sample_efficiency_ratio(evals[evals["task"] == DMC[0]].assign(
        task=lambda d: np.where(d["algorithm"] == "mbdpo", DMC[0], DMC[1])), "mbdpo", "tdmpc2", reps=REPS)
    assert "no task has runs of both" in row(table, "DMControl")["notes"]


def test_fit_k_by_hand():
    steps = np.arange(0, 11, dtype=float)
    a = np.minimum(steps * 10, 100)[None]          # A reaches 100 at step 10
    b = np.minimum(steps * 5, 100)[None]           # B reaches 50 at step 10: B(s) = A(s / 2)
    k, mse, n = E.fit_k(steps, a, steps, b, E.k_grid())
    # B's step 0 is not compared, nor s/k before A's first evaluation after 0 (step 1): s = 2..10
    assert k[0] == pytest.approx(2.0) and mse[0] == pytest.approx(0.0, abs=1e-20) and n[0] == 9
    k, _, _ = E.fit_k(steps, a, steps, b, E.k_grid(), min_points=11)  # at most s = 1..10
    assert np.isnan(k[0])


def test_parse_pairs_and_default_pairs():
    assert E.parse_pairs(["mbdpo:tdmpc2", "mbdpo:sac"]) == [("mbdpo", "tdmpc2"), ("mbdpo", "sac")]
    for bad in ("mbdpo", "mbdpo:", "a:b:c"):
        with pytest.raises(AnalysisInputError, match="malformed"):
            E.parse_pairs([bad])
    assert E.default_pairs(["mbdpo", "tdmpc2", "sac"]) == [("mbdpo", "tdmpc2")]
    assert E.default_pairs(["mbdpo", "sac"]) == []


# ------------------------------------------------------------------------------------------------ report, CLI

def test_analyze_both_units_writes_each_reading_and_says_the_units(tmp_path):
    tidy = stretched(DMC[:3], k_true=2.0, seeds=(1, 2))
    synthetic.write_published(tmp_path / "pub", tidy)
    results = analyze_both_units(tmp_path / "out", tmp_path / "pub", reps=50, per_task=False)
    assert set(results) == {"agent", "env"}
    by_unit = pd.read_csv(tmp_path / "out" / "tables" / "efficiency_by_unit.csv")
    dmc = by_unit[by_unit["domain"] == "DMControl"].set_index("reading")["k"]
    # mbdpo's folder holds agent steps (written so): read as such, k = 2; read as env steps, k halves
    assert dmc["mbdpo = agent steps"] == pytest.approx(2.0, rel=0.08)
    # read as env steps, A's (mbdpo's) steps halve: A looks twice as efficient, so k doubles
    ratio = dmc["mbdpo = env steps"] / dmc["mbdpo = agent steps"]
    assert ratio == pytest.approx(2.0, rel=0.08)
    for unit in ("agent", "env"):
        out = tmp_path / "out" / f"units-{unit}"
        summary = (out / "summary.md").read_text()
        assert "## Step units" in summary and "## Sample-efficiency ratio" in summary
        reading = "agent steps × action repeat" if unit == "agent" else "env steps"
        assert f"| published | mbdpo | mbdpo | {unit} | {reading} |" in summary
        assert (out / "figures" / "efficiency_mbdpo_vs_tdmpc2_dmcontrol.png").exists()
        caption = (out / "tables" / "per_domain.md").read_text().splitlines()[0]
        assert f"mbdpo: {reading}" in caption and "env step" in caption
    assert "units-agent/" in (tmp_path / "out" / "summary.md").read_text()


def test_cli_efficiency_pairs_and_step_unit(tmp_path, capsys):
    tidy = stretched(DMC[:2], k_true=2.0, seeds=(1, 2))
    synthetic.write_published(tmp_path / "pub", tidy)
    out = tmp_path / "out"
    code = main(["analyze", "--published", str(tmp_path / "pub"), "--out", str(out), "--reps", "30",
                 "--no-per-task", "--step-unit", "mbdpo=env", "--efficiency", "mbdpo:tdmpc2,tdmpc2:mbdpo"])
    assert code == 0, capsys.readouterr().err
    table = pd.read_csv(out / "tables" / "efficiency.csv")
    assert set(zip(table["a"], table["b"])) == {("mbdpo", "tdmpc2"), ("tdmpc2", "mbdpo")}
    assert set(table["units_a"]) == {"env steps"}
    units = pd.read_csv(out / "tables" / "step_units.csv").set_index("folder")
    assert units.loc["mbdpo", "origin"] == "override"
