"""The claims ledger (issue 23): the verdict rule, every verdict from synthetic data built to produce it, the step
unit flipping C1 at exactly the factor 2, *not tested* naming the config, the power estimate keeping its promise in
simulation, claims.md parsing, and the entry points (`mbdpo-bench claims`, `analyze`)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from algorithms import cli
from analysis import claims as C
from analysis import ledger as L
from analysis import synthetic
from analysis import verdicts as V
from analysis.report import analyze
from envs.registry import TASKS

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")
REPS = 300
DMC = ["cartpole-balance", "reacher-easy", "walker-walk", "cheetah-run"]


# ------------------------------------------------------------------------------------------ the verdict rule

@pytest.mark.parametrize("ci, direction, expected", [
    ((2.0, 1.0, 3.0), ">", V.SUPPORTED), ((-2.0, -3.0, -1.0), ">", V.CONTRADICTED),
    ((0.5, -1.0, 2.0), ">", V.UNDECIDED), ((1.0, 0.0, 2.0), ">", V.UNDECIDED),
    ((0.5, 0.2, 0.9), "<", V.SUPPORTED), ((1.5, 1.2, 1.9), "<", V.CONTRADICTED),
    ((float("nan"),) * 3, ">", V.NOT_TESTED)])
def test_verdict_rule(ci, direction, expected):
    threshold = 1.0 if direction == "<" else 0.0
    assert V.verdict(*ci, threshold, direction) == expected


def test_readings_and_conjunction():
    assert V.across_readings({"agent": V.SUPPORTED, "env": V.SUPPORTED}) == V.SUPPORTED
    assert V.across_readings({"agent": V.UNDECIDED, "env": V.SUPPORTED}) == V.DEPENDS_ON_UNIT
    assert V.across_readings({"env": V.NOT_TESTED}) == V.NOT_TESTED
    assert V.conjunction([V.SUPPORTED, V.SUPPORTED]) == V.SUPPORTED
    assert V.conjunction([V.SUPPORTED, V.UNDECIDED, V.DEPENDS_ON_UNIT]) == V.DEPENDS_ON_UNIT
    assert V.conjunction([V.DEPENDS_ON_UNIT, V.CONTRADICTED]) == V.CONTRADICTED
    assert V.conjunction([V.SUPPORTED, V.NOT_TESTED]) == V.NOT_TESTED
    assert V.conjunction([]) == V.NOT_TESTED


def test_runs_to_decide_edges():
    assert V.runs_to_decide(3, 2.0, 1.0, 3.0, 0.0) == 3.0          # already clear: what it has
    assert math.isinf(V.runs_to_decide(3, 0.0, -1.0, 1.0, 0.0))     # zero effect: no number decides it
    assert math.isnan(V.runs_to_decide(1, 1.0, 0.0, 2.0, 0.0))      # one seed: no spread to extrapolate
    n = V.runs_to_decide(50, 1.0, 0.0, 2.0, 0.0)                    # half-width = effect, large n: ≈ 2.04 n
    assert n == pytest.approx(50 * V.POWER_FACTOR, rel=0.03)
    target = 1.0 * 1.959963984540054 / (1.959963984540054 + 0.8416212335729143)
    assert V.bootstrap_width(1.0, 50, int(n)) <= target < V.bootstrap_width(1.0, 50, int(n) - 1)


# ------------------------------------------------------------------------------------- released-format data

def value(task: str, seed: int, env_step: np.ndarray) -> np.ndarray:
    """A return curve that keeps rising to twice the budget (so a factor 2 in steps shows at the budget end),
    with a deterministic per-seed wiggle."""
    budget = TASKS[task].budget
    x = env_step / budget
    return 100.0 + 300.0 * x + 15.0 * np.sin(7.0 * seed + 13.0 * x + len(task))


def write_released(root: Path, mbdpo_of, tasks=DMC, seeds=(1, 2, 3), baseline: str = "tdmpc2",
                   baseline_of=value) -> Path:
    """``baseline``'s curves in env steps and mbdpo's file in its declared unit (agent steps), where
    ``mbdpo_of(task, seed, file_step)`` gives mbdpo's return at the file's own step."""
    for task in tasks:
        budget = TASKS[task].budget
        steps = np.linspace(0, budget, 21).astype(np.int64)
        for folder, fn in ((baseline, baseline_of), ("mbdpo", mbdpo_of)):
            rows = [pd.DataFrame({"step": steps, "reward": fn(task, s, steps), "seed": s}) for s in seeds]
            (root / folder).mkdir(parents=True, exist_ok=True)
            pd.concat(rows).to_csv(root / folder / f"{task}.csv", index=False)
    return root


def ledger_of(published: Path, **kwargs) -> L.Ledger:
    return L.build_ledger(L.load_sources(published=published, reps=REPS, **kwargs))


def part_verdicts(ledger: L.Ledger, claim: str) -> dict[tuple[str, str], str]:
    rows = ledger.rows[ledger.rows["claim"] == claim]
    return {(r.part, r.statistic): r.part_verdict for r in rows.itertuples()}


def reading_verdicts(ledger: L.Ledger, claim: str, part: str, statistic: str) -> dict[str, str]:
    rows = ledger.rows[(ledger.rows["claim"] == claim) & (ledger.rows["part"] == part)
                       & (ledger.rows["statistic"] == statistic)]
    return dict(zip(rows["reading"], rows["verdict"]))


def test_a_factor_of_exactly_two_in_steps_flips_c1_with_the_reading(tmp_path):
    """mbdpo's file at step s holds tdmpc2's value at env step 2s: read as env steps it is ahead at the budget end
    (supported); read as agent steps (×2) it is tdmpc2 exactly (undecided). The verdict: depends on the step unit."""
    published = write_released(tmp_path, lambda t, s, st: value(t, s, 2 * st))
    ledger = ledger_of(published)
    part = "DMControl: mbdpo vs tdmpc2"
    for statistic in ("IQM difference (points)", "P(improvement)"):
        assert reading_verdicts(ledger, "C1", part, statistic) == {"agent": V.UNDECIDED, "env": V.SUPPORTED}
    rows = ledger.rows[(ledger.rows["claim"] == "C1") & (ledger.rows["part"] == part)]
    agent = rows[(rows["reading"] == "agent") & (rows["statistic"] == "IQM difference (points)")].iloc[0]
    assert agent["value"] == 0.0  # identical values at equal env steps
    summary = ledger.summary.set_index("claim")
    assert summary.loc["C1", "verdict"] == V.DEPENDS_ON_UNIT
    assert "FIDELITY.md D1" in summary.loc["C1", "decide"]
    # the same data with the unit fixed is no longer two readings
    fixed = ledger_of(published, step_units={"mbdpo": "env"})
    assert set(fixed.rows.loc[fixed.rows["claim"] == "C1", "reading"]) == {"declared"}
    assert fixed.summary.set_index("claim").loc["C1", "verdict"] == V.SUPPORTED


def test_supported_and_contradicted_from_data_built_for_them(tmp_path):
    ahead = ledger_of(write_released(tmp_path / "ahead", lambda t, s, st: value(t, s, 2 * st) + 200.0))
    behind = ledger_of(write_released(tmp_path / "behind", lambda t, s, st: value(t, s, 2 * st) - 400.0))
    assert ahead.summary.set_index("claim").loc["C1", "verdict"] == V.SUPPORTED
    assert behind.summary.set_index("claim").loc["C1", "verdict"] == V.CONTRADICTED
    assert set(part_verdicts(behind, "C1").values()) == {V.CONTRADICTED}


def test_undecided_carries_a_power_estimate_and_a_cost(tmp_path):
    """A small lead buried in seed noise: undecided, with seeds to decide it and the hours of the workflow's cost
    model (an estimate); a claim without any data: not tested, naming the config."""
    rng = np.random.default_rng(7)  # a draw whose lead is positive and undecided under both readings
    noise = {(t, s): rng.normal(0, 60, 21) for t in DMC for s in (1, 2, 3)}
    flat = lambda t, s, st: 400.0 + 0 * st + 15.0 * np.sin(7.0 * s + len(t))  # noqa: E731 - the same at any step
    published = write_released(tmp_path, lambda t, s, st: flat(t, s, st) + 10.0 + noise[(t, s)], baseline_of=flat)
    plan = cli.cost_model()
    ledger = L.build_ledger(L.load_sources(published=published, reps=REPS), plan)
    rows = ledger.rows[(ledger.rows["claim"] == "C1") & (ledger.rows["reading"] == "agent")
                       & (ledger.rows["part"] == "DMControl: mbdpo vs tdmpc2")]
    iqm = rows[rows["statistic"] == "IQM difference (points)"].iloc[0]
    assert iqm["verdict"] == V.UNDECIDED and iqm["low"] < 0 < iqm["high"]
    assert iqm["n_needed"] > 3
    assert iqm["gpu_hours"] > 0 and iqm["cpu_hours"] > iqm["gpu_hours"]
    extra_runs = (iqm["n_needed"] - 3) * 2 * len(DMC)
    per_run = plan.estimated_hours("tdmpc2", "cartpole-balance", TASKS["cartpole-balance"].budget, gpu=True)
    assert iqm["gpu_hours"] == pytest.approx(extra_runs * per_run, rel=0.3)
    c4 = ledger.rows[ledger.rows["claim"] == "C4"].iloc[0]
    assert c4["verdict"] == V.NOT_TESTED and "config/scaling.yaml" in c4["note"]
    assert "config/scaling.yaml" in ledger.summary.set_index("claim").loc["C4", "decide"]


def test_power_estimate_shrinks_the_ci_as_promised():
    """Simulate a small effect with few seeds, take the suggested seed count, simulate again with it: the CI's
    half-width shrinks as 1/√seeds and the CI clears the threshold in most simulations (80 % nominal)."""
    rng = np.random.default_rng(0)
    tasks, effect, spread = 6, 3.0, 12.0
    levels = rng.uniform(30, 70, tasks)

    def draw(seeds: int):
        x = levels + effect + rng.normal(0, spread, (seeds, tasks))
        y = levels + rng.normal(0, spread, (seeds, tasks))
        return C.metric_difference(x, y, 400, int(rng.integers(1 << 30)), metric="mean")

    observed = np.median([(h - lo) / 2 for _, lo, h in (draw(3) for _ in range(20))])  # the spread at 3 seeds
    assert observed > effect  # undecided with 3 seeds
    needed = int(V.runs_to_decide(3, effect, effect - observed, effect + observed, 0.0))
    assert needed > 3
    results = [draw(needed) for _ in range(40)]
    widths = np.array([(h - lo) / 2 for _, lo, h in results])
    assert np.median(widths) == pytest.approx(V.bootstrap_width(observed, 3, needed), rel=0.2)
    decided = np.mean([lo > 0 for _, lo, _ in results])
    assert 0.6 <= decided


# --------------------------------------------------------------------------------------------- own run files

def test_own_runs_give_c5_c7_with_device_and_c2_says_why_not(tmp_path):
    table = synthetic.curves(["mbdpo", "tdmpc2"], ["cartpole-balance", "walker-walk"], seeds=(1, 2), points=3)
    table["step"] = table["step"] // 1000  # smoke-sized: 3 evaluations over a few thousand steps
    runs = synthetic.write_runs(tmp_path / "runs", table)
    for info in runs.glob("*/*/*/run.json"):  # the trainer records the resolved device; config.yaml says "auto"
        info.write_text(json.dumps({**json.loads(info.read_text()), "device": "cpu"}))
        config = info.parent / "config.yaml"
        config.write_text(config.read_text() + "device: auto\n")
    ledger = L.build_ledger(L.load_sources(runs=runs, reps=REPS))
    rows = ledger.rows
    assert set(rows.loc[rows["claim"] == "C5", "statistic"]) >= {"mean cross-TD error ratio"}
    c7 = rows[rows["claim"] == "C7"]
    assert len(c7) and c7["note"].str.startswith("device: cpu").all()
    c2 = rows[rows["claim"] == "C2"]
    assert (c2["verdict"] == V.NOT_TESTED).all() and c2["note"].str.contains("evaluation").all()
    assert set(rows.loc[rows["source"] == C.OWN, "scale"]) == {C.SMOKE}


def test_offline_runs_give_c4_rows_and_the_gap(tmp_path):
    from tests.test_analysis_offline import write_offline_run

    for algo in ("mbdpo", "tdmpc2"):
        for size in ("1.7M", "6M", "21M"):
            for seed in (1, 2):
                write_offline_run(tmp_path, algo, size, seed)
    ledger = L.build_ledger(L.load_sources(runs=tmp_path / "runs", reps=REPS))
    c4 = ledger.rows[ledger.rows["claim"] == "C4"].set_index(["part", "statistic"])
    # score_of rises with size for both and the gap is constant (10 points)
    assert c4.loc[("mt3: mbdpo", "rank correlation of score with parameters"), "value"] == pytest.approx(1.0)
    assert c4.loc[("mt3: mbdpo", "rank correlation of score with parameters"), "verdict"] == V.SUPPORTED
    gap = c4.loc[("mt3: mbdpo − tdmpc2 at 1.7M", "score gap (points)")]
    assert gap["value"] == pytest.approx(10.0) and gap["verdict"] == V.SUPPORTED


def test_o2o_runs_give_c6(tmp_path):
    from tests.test_analysis_o2o import write_o2o_runs

    ledger = L.build_ledger(L.load_sources(runs=write_o2o_runs(tmp_path / "runs"), reps=REPS))
    c6 = ledger.rows[ledger.rows["claim"] == "C6"]
    assert set(c6["part"]) == {"mbdpo: fine-tuned vs from scratch"}
    iqm = c6[c6["statistic"] == "IQM difference (points)"].iloc[0]
    # finals (score = return / 10): fine-tune 20, 22, 60, 80 vs scratch 40, 50, 70, 72; IQM of 4 = middle two
    assert iqm["value"] == pytest.approx(np.mean([22, 60]) - np.mean([50, 70]), abs=1e-9)
    assert iqm["verdict"] in (V.UNDECIDED, V.CONTRADICTED)


# --------------------------------------------------------------------------------------------- outputs

def parse_headline(text: str) -> list[dict[str, str]]:
    """The first Markdown table of ``text`` (the headline: one row per claim) as dicts."""
    all_lines = text.splitlines()
    start = next(i for i, ln in enumerate(all_lines) if ln.startswith("|"))
    end = next((i for i in range(start, len(all_lines)) if not all_lines[i].startswith("|")), len(all_lines))
    lines = all_lines[start:end]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = []
    for line in lines[2:]:
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip()[1:-1])]
        if len(cells) != len(header):
            break
        rows.append(dict(zip(header, cells)))
    return rows


def test_cli_claims_writes_a_ledger_that_parses(tmp_path, capsys):
    published = write_released(tmp_path / "pub", lambda t, s, st: value(t, s, 2 * st))
    out = tmp_path / "claims"
    assert cli.main(["claims", "--published", str(published), "--out", str(out), "--reps", str(REPS)]) == 0
    printed = capsys.readouterr().out
    assert "C1 online lead" in printed and str(out / "claims.md") in printed
    rows = parse_headline((out / "claims.md").read_text())
    assert [r["claim"].split()[0] for r in rows] == list(C.CLAIMS)
    for r in rows:
        assert r["verdict"].strip("*") in V.VERDICTS
    frame = pd.read_csv(out / "claims.csv")
    assert list(frame.columns) == L.LEDGER_COLUMNS and set(frame["verdict"]) <= set(V.VERDICTS)
    assert (out / "figures" / "claims.png").stat().st_size > 10_000


def test_cli_claims_bad_input_is_one_line(tmp_path, capsys):
    assert cli.main(["claims", "--published", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "nowhere" in err and "Traceback" not in err


def test_analyze_leads_its_summary_with_the_ledger(tmp_path, monkeypatch):
    monkeypatch.setattr("analysis.figures.save", lambda fig, path: Path(path))
    published = write_released(tmp_path / "pub", lambda t, s, st: value(t, s, 2 * st))
    result = analyze(tmp_path / "out", published=published, reps=100, per_task=False, scale="smoke")
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert summary.index("## Claims of the paper") < summary.index("## Step units")
    assert "depends on the step unit" in summary
    assert (tmp_path / "out" / "claims.md") in result.written


def test_a_single_seed_is_no_evidence(tmp_path):
    """One seed per task: the stratified bootstrap has nothing to resample, so its zero-width CI must not decide a
    claim, however large the effect (the O2O smoke config runs one seed)."""
    from tests.test_analysis_o2o import write_o2o_runs

    one_seed = {k: (v[0], v[1], v[2] + 300) if k[0] == "mbdpo-finetune" else v
                for k, v in __import__("tests.test_analysis_o2o", fromlist=["RETURNS"]).RETURNS.items() if k[2] == 1}
    ledger = L.build_ledger(L.load_sources(runs=write_o2o_runs(tmp_path / "runs", one_seed), reps=REPS))
    c6 = ledger.rows[ledger.rows["claim"] == "C6"]
    assert len(c6) and (c6["verdict"] == V.UNDECIDED).all()
    assert c6["note"].str.contains("no CI").all()
    assert ledger.summary.set_index("claim").loc["C6", "verdict"] == V.UNDECIDED


def test_a_negligible_effect_is_not_priced_in_seeds():
    """An effect far inside its spread would need absurd seed counts: the ledger says so instead of a number."""
    claim = C.CLAIMS["C5"]
    row = {c: None for c in L.LEDGER_COLUMNS}
    row.update(claim="C5", part="mbdpo vs tdmpc2", source=C.OWN, scale=C.SMOKE, statistic="ratio", value=1.001,
               low=0.9, high=1.1, threshold=1.0, direction="<", verdict=V.UNDECIDED, part_verdict=V.UNDECIDED,
               n=2, unit=C.SEEDS_UNIT, n_needed=V.runs_to_decide(2, 1.001, 0.9, 1.1, 1.0), gpu_hours=1e6,
               cpu_hours=1e7)
    assert row["n_needed"] > L.NEGLIGIBLE * 2
    text = L.decide_text(claim, pd.DataFrame([row]), V.UNDECIDED)
    assert "negligible" in text and "≈" not in text
    row.update(value=1.3, low=0.95, high=1.65, n_needed=V.runs_to_decide(2, 1.3, 0.95, 1.65, 1.0))
    assert "≈" in L.decide_text(claim, pd.DataFrame([row]), V.UNDECIDED)
