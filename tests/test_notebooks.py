"""Tests of the analysis notebooks (analysis/notebooks/*.ipynb): each runs end to end on synthetic inputs.

Jupyter is not a dependency, so a notebook is run here as its code cells ``exec``-ed in order in one fresh
namespace, with its inputs given by the ``MBDPO_*`` environment variables that its parameters cell reads. The
inputs are written by :mod:`analysis.synthetic` under a temporary folder: a main grid (mbdpo, tdmpc2, sac on five
tasks of four domains, one of them a ``-pixels`` task, two seeds, one corrupt run), the same grid as released
curves, and a second run folder that adds variants of mbdpo on two of the tasks: model sizes 1.7M and 6M trained on
task sets of 30 and 80 tasks (``agent.task_set``), and 5 and 10 diffusion steps. Every notebook in the folder must
have a case below, and none may be committed with outputs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from matplotlib.figure import Figure

from analysis import synthetic

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "analysis" / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
REPS = 200  # bootstrap replicates (the notebooks' default is 2000)
ALGORITHMS = ("mbdpo", "tdmpc2", "sac")
TASKS = ("cartpole-balance", "walker-walk", "mw-assembly", "myo-reach", "cheetah-run-pixels")
DOMAINS = {"DMControl", "MetaWorld", "MyoSuite", "Visual RL"}
VARIANT_TASKS = ("cartpole-balance", "mw-assembly")
SEEDS = (1, 2)
SIZES = {"1.7M": 1.7e6, "6M": 6e6}
TASK_SETS = (30, 80)
VARIANTS = {**{f"mbdpo-{size}-{n}": {"model_size": size, "task_set": n} for size in SIZES for n in TASK_SETS},
            "mbdpo-T5": {"diffusion_steps": 5}, "mbdpo-T10": {"diffusion_steps": 10}}

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")  # arch warns about rliable's RandomState


# ------------------------------------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    """``runs`` (main grid), ``published`` (the same curves as released files), ``scaling_runs`` (main grid plus
    the mbdpo ``VARIANTS``) and ``corrupt`` (the broken eval.csv)."""
    root = tmp_path_factory.mktemp("notebook_inputs")
    table = synthetic.curves(ALGORITHMS, TASKS, seeds=SEEDS, points=6, seed=0)
    synthetic.write_published(root / "published", table)
    # Configs without agent.model_size: the main grid alone has no scaling runs.
    for runs in ("runs", "scaling_runs"):
        synthetic.write_runs(root / runs, table, agent={"lr": 3e-4}, train_rows=5)
    corrupt = root / "runs" / "sac" / "walker-walk" / "3"
    shutil.copytree(root / "runs" / "sac" / "walker-walk" / "1", corrupt)
    (corrupt / "eval.csv").write_text("not,an\neval,file\n")
    for i, (name, agent) in enumerate(VARIANTS.items()):
        variants = synthetic.curves(["mbdpo"], VARIANT_TASKS, seeds=SEEDS, points=6, seed=1 + i)
        synthetic.write_runs(root / "scaling_runs", variants, agent=agent, train_rows=5, name_of={"mbdpo": name})
    return {"runs": root / "runs", "published": root / "published", "scaling_runs": root / "scaling_runs",
            "corrupt": corrupt / "eval.csv"}


# -------------------------------------------------------------------------------------------------------- helpers

def read_notebook(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def code_cells(nb: dict) -> list[tuple[str, list[str]]]:
    """(source, tags) of every code cell, in order."""
    return [("".join(c["source"]), c["metadata"].get("tags", [])) for c in nb["cells"] if c["cell_type"] == "code"]


def run_notebook(path: Path, env: dict[str, str], monkeypatch, until_tag: str | None = None) -> dict:
    """Execute the notebook's code cells in one fresh namespace with exactly ``env`` as its ``MBDPO_*`` variables;
    stop after the first cell tagged ``until_tag`` if given. Returns the namespace."""
    for key in [k for k in os.environ if k.startswith("MBDPO_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    namespace: dict = {"__name__": "__main__"}
    for i, (source, tags) in enumerate(code_cells(read_notebook(path))):
        exec(compile(source, f"{path.name}:cell{i}", "exec"), namespace)  # noqa: S102 - our own notebooks
        if until_tag in tags:
            break
    return namespace


def assert_figure(fig, empty_message: str | None = None) -> None:
    """A Figure with axes; with ``empty_message``, the library's "nothing to plot" figure saying it."""
    assert isinstance(fig, Figure)
    assert fig.axes
    texts = " ".join(t.get_text() for ax in fig.axes for t in ax.texts)
    if empty_message is None:
        assert any(ax.axison and (ax.lines or ax.patches or ax.collections) for ax in fig.axes), texts
    else:
        assert not any(ax.axison for ax in fig.axes)
        assert empty_message in texts


# ------------------------------------------------------------------------------------------------- notebook cases

def check_aggregate_results(ns: dict, inputs: dict[str, Path]) -> None:
    problems = ns["data"].problems
    assert list(problems["kind"]) == ["corrupt"] and problems["path"].iloc[0] == str(inputs["corrupt"])

    ours = set(ALGORITHMS)
    expected = ours | {f"{a} (published)" for a in ALGORITHMS}
    per_domain = ns["per_domain"]
    assert set(per_domain["domain"]) == DOMAINS | {"All"}
    for domain, sub in per_domain.groupby("domain"):
        assert set(sub["algorithm"]) == expected, domain
    assert per_domain[["mean", "iqm"]].stack().between(0, 100).all()
    assert (per_domain["mean_low"] <= per_domain["mean"]).all()
    assert (per_domain["mean"] <= per_domain["mean_high"]).all()
    assert dict(zip(per_domain["domain"], per_domain["step"]))["Visual RL"] == 1_000_000
    assert per_domain.loc[per_domain["domain"] == "DMControl", "n_tasks"].eq(2).all()

    paper = ns["paper_table"]
    assert list(paper["Domain"]) == ["DMControl", "MetaWorld", "MyoSuite", "Visual RL", "All"]
    assert {"MBDPO", "TD-MPC2", "SAC", "MBDPO (published)"} <= set(paper.columns)

    intervals = ns["intervals"]
    assert set(intervals["metric"]) == {"iqm", "mean", "median", "optimality_gap"}
    curves = ns["curves"]
    assert set(curves["domain"]) == DOMAINS and set(curves["algorithm"]) == expected
    assert curves["value"].between(0, 100).all()
    profiles = ns["profiles"]
    assert set(profiles["algorithm"]) == expected and profiles["fraction"].between(0, 1).all()
    poi = ns["poi"]
    assert set(poi["algorithm"]) == {"mbdpo"} and set(poi["baseline"]) == expected - {"mbdpo"}
    assert poi["value"].between(0, 1).all()
    for name in ("curves_fig", "interval_fig", "profile_fig", "poi_fig"):
        assert_figure(ns[name])


def check_diagnostics(ns: dict, inputs: dict[str, Path]) -> None:
    assert list(ns["data"].problems["kind"]) == ["corrupt"]
    fig = ns["diagnostics_fig"]
    assert_figure(fig)
    panels = [ax for ax in fig.axes if ax.axison]
    titles = [ax.get_title().lower() for ax in panels]
    assert len(panels) == 2 and "td" in titles[0] and "drift" in titles[1]
    assert all(len(ax.lines) == len(ALGORITHMS) for ax in panels)  # one curve per algorithm, nothing "missing"
    timing = ns["timing"]
    assert set(zip(timing["algorithm"], timing["domain"])) == {(a, d) for a in ALGORITHMS for d in DOMAINS}
    assert (timing[["ms_per_env_step", "update_ms", "act_ms"]] > 0).all().all()


def check_scaling(ns: dict, inputs: dict[str, Path]) -> None:
    # The variants ran on two of the five tasks: their own task × seed grids are complete, so nothing is missing.
    assert ns["data"].problems.empty
    scaling = ns["scaling"]
    assert set(scaling["algorithm"]) == {"mbdpo"} and set(scaling["params"]) == set(SIZES.values())
    assert set(scaling["task_set"]) == set(TASK_SETS)
    assert len(scaling) == len(SIZES) * len(TASK_SETS) * len(VARIANT_TASKS) * len(SEEDS)
    table = ns["scaling_tab"]
    assert list(table["params"]) == sorted(SIZES.values())
    assert list(table.columns) == ["algorithm", "params", "30 tasks", "80 tasks", "80/30"]
    assert table.drop(columns=["algorithm"]).gt(0).all().all()
    assert_figure(ns["scaling_fig"])
    assert len(ns["scaling_fig"].axes[0].lines) >= len(TASK_SETS)  # one line per task set
    steps = ns["diffusion_steps"]
    assert sorted(steps["agent.diffusion_steps"].unique()) == [5, 10]
    assert set(steps["task"]) == set(VARIANT_TASKS)
    assert_figure(ns["diffusion_steps_fig"])
    assert len(ns["diffusion_steps_fig"].axes[0].patches) == 2  # one bar per value of T
    for parameter in ("eta", "energy_lambda", "num_samples"):
        assert ns[parameter].empty
        assert_figure(ns[f"{parameter}_fig"], f"no runs with 'agent.{parameter}' set")


CASES: dict[str, tuple[Callable[[dict[str, Path]], dict[str, str]], Callable]] = {
    "aggregate_results.ipynb": (lambda p: {"MBDPO_RUNS": str(p["runs"]), "MBDPO_PUBLISHED": str(p["published"])},
                                check_aggregate_results),
    "diagnostics.ipynb": (lambda p: {"MBDPO_RUNS": str(p["runs"])}, check_diagnostics),
    "scaling.ipynb": (lambda p: {"MBDPO_RUNS": str(p["scaling_runs"]), "MBDPO_TASK_SET_KEY": "agent.task_set"},
                      check_scaling),
}


# ---------------------------------------------------------------------------------------------------------- tests

def test_every_notebook_has_a_case():
    assert {p.name for p in NOTEBOOKS} == set(CASES), "add a case (inputs and checks) for each notebook"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_clean_nbformat4(path):
    nb = read_notebook(path)
    assert nb["nbformat"] == 4 and nb["nbformat_minor"] >= 4
    assert nb["metadata"]["kernelspec"]["language"] == "python"
    cells = nb["cells"]
    assert cells[0]["cell_type"] == "markdown" and "".join(cells[0]["source"]).startswith("# ")
    assert "repository root" in "".join(cells[0]["source"])
    ids = [c["id"] for c in cells]
    assert len(set(ids)) == len(ids) and all(re.fullmatch(r"[A-Za-z0-9_-]{1,64}", i) for i in ids)
    for cell in cells:
        assert cell["cell_type"] in ("markdown", "code")
        assert isinstance(cell["metadata"], dict)
        assert isinstance(cell["source"], list) and all(isinstance(line, str) for line in cell["source"])
        assert all(line.endswith("\n") for line in cell["source"][:-1])
        if cell["cell_type"] == "code":
            assert cell["execution_count"] is None and cell["outputs"] == [], "notebooks are committed without outputs"
            source = "".join(cell["source"])
            assert not re.search(r"^\s*[%!]", source, re.MULTILINE), "no IPython magics: the tests exec the cells"
            compile(source, f"{path.name}:cell", "exec")
        else:
            assert "outputs" not in cell and "execution_count" not in cell
    assert sum("parameters" in c["metadata"].get("tags", []) for c in cells) == 1
    assert path.read_text(encoding="utf-8") == json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_on_synthetic_inputs(path, inputs, monkeypatch):
    env_of, check = CASES[path.name]
    ns = run_notebook(path, {**env_of(inputs), "MBDPO_REPS": str(REPS)}, monkeypatch)
    check(ns, inputs)


def test_aggregate_results_on_released_curves_alone(inputs, monkeypatch):
    """Only MBDPO_PUBLISHED: the released curves under their own names (no "(published)" suffix)."""
    ns = run_notebook(NOTEBOOK_DIR / "aggregate_results.ipynb",
                      {"MBDPO_PUBLISHED": str(inputs["published"]), "MBDPO_REPS": str(REPS)}, monkeypatch)
    assert ns["RUNS"] is None
    assert set(ns["per_domain"]["algorithm"]) == set(ALGORITHMS)
    assert ns["data"].problems.empty
    assert_figure(ns["curves_fig"])


def test_scaling_without_scaling_runs_says_so(inputs, monkeypatch):
    """The main grid has no model-size or ablation runs: every figure is the library's "nothing to plot" one."""
    ns = run_notebook(NOTEBOOK_DIR / "scaling.ipynb",
                      {"MBDPO_RUNS": str(inputs["runs"]), "MBDPO_TASK_SET_KEY": "agent.task_set"}, monkeypatch)
    assert ns["scaling"].empty and ns["scaling_tab"].empty
    assert_figure(ns["scaling_fig"], "no scaling runs")
    for parameter in ("eta", "energy_lambda", "diffusion_steps", "num_samples"):
        assert ns[parameter].empty
        assert_figure(ns[f"{parameter}_fig"], f"no runs with 'agent.{parameter}' set")


# Runs the setup and parameters cells of the notebook argv[1] in a bare interpreter (-I -S: no site-packages, so
# no editable install, and no working directory on sys.path), as a Jupyter kernel started in analysis/notebooks/.
_SETUP_PROBE = """
import importlib.util, json, sys
cells = [c for c in json.load(open(sys.argv[1], encoding="utf-8"))["cells"] if c["cell_type"] == "code"]
ns = {"__name__": "__main__"}
for cell in cells:
    exec("".join(cell["source"]), ns)
    if "parameters" in cell["metadata"].get("tags", []):
        break
origin = importlib.util.find_spec("analysis").origin
print(json.dumps({"root": str(ns["ROOT"]), "runs": ns["RUNS"], "analysis": origin}))
"""


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_setup_finds_the_repository_from_the_notebook_folder(path):
    """Started in analysis/notebooks/ (Jupyter's default) where ``analysis`` is not importable, the first cell
    finds the repository root and puts it on sys.path, and the default inputs are the repository's results/runs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MBDPO_", "PYTHON"))}
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", _SETUP_PROBE, str(path)], check=False,
                          cwd=NOTEBOOK_DIR, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout)
    assert found == {"root": str(ROOT), "runs": str(ROOT / "results" / "runs"),
                     "analysis": str(ROOT / "analysis" / "__init__.py")}
