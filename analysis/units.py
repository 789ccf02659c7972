"""Step units of every source of curves: the one place that says which released folder counts what.

Two units exist (shared/paper/FIDELITY.md, D1):

- ``env``: environment steps, action repeat included. The harness's own runs (``eval.csv`` ``step``) and the
  TD-MPC2-era released folders (tdmpc2, tdmpc, sac, dreamerv3, tdmpc2-pixels) count these.
- ``agent``: agent steps (one per policy action) = env steps / action repeat. The released MBDPO trainer writes this
  counter, so the mbdpo and mbdpo-pixels folders very likely count agent steps — very likely, not proven by code
  alone, which is why those folders are marked *uncertain* and can be analysed under both readings.

The loader (:func:`analysis.load.load_published`) converts every source to env steps (agent steps × the task's
action repeat from the registry) and keeps the file's own value in ``source_step`` and its unit in ``step_unit``,
so every table and figure downstream is on env steps. Nothing here chooses silently: a folder not declared below is
read as env steps, and that choice is reported (a ``step_unit_assumed`` problem and a row of the units table).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from analysis import AnalysisInputError

ENV, AGENT = "env", "agent"
STEP_UNITS = (ENV, AGENT)

# Released folder → the unit of its `step` column (FIDELITY.md D1; shared/reference/FORMAT.md).
PUBLISHED_STEP_UNITS: dict[str, str] = {
    "mbdpo": AGENT, "mbdpo-pixels": AGENT,
    "tdmpc2": ENV, "tdmpc": ENV, "sac": ENV, "dreamerv3": ENV, "tdmpc2-pixels": ENV,
}
# Folders whose declared unit is an inference from the data, not a documented fact: `--both-units` analyses them
# under each reading.
UNCERTAIN_FOLDERS: tuple[str, ...] = ("mbdpo", "mbdpo-pixels")
# What a released folder that is not declared above is read as (reported, never silent).
DEFAULT_PUBLISHED_UNIT = ENV
# The harness's run files: the trainer's `step` counts env steps (results/README.md).
OWN_RUNS_STEP_UNIT = ENV

UNITS_COLUMNS = ["source", "folder", "algorithm", "step_unit", "origin", "reading"]


def reading(unit: str) -> str:
    """How a source's steps become the env steps every figure shows: ``"agent steps × action repeat"`` or
    ``"env steps"``."""
    check_unit(unit, "step unit")
    return "agent steps × action repeat" if unit == AGENT else "env steps"


def check_unit(unit: str, what: str) -> str:
    """``unit`` if it is one of :data:`STEP_UNITS`; otherwise one clear error naming it and the valid ones."""
    if unit not in STEP_UNITS:
        raise AnalysisInputError(f"{what}: unknown step unit {unit!r}; valid: {', '.join(STEP_UNITS)}")
    return unit


def parse_step_units(items: Iterable[str] | Mapping[str, str] | None) -> dict[str, str]:
    """``["mbdpo=env", "sac=env,tdmpc=env"]`` (or a mapping) → ``{"mbdpo": "env", "sac": "env", "tdmpc": "env"}``.

    Each item is ``FOLDER=UNIT`` or a comma-separated list of them; FOLDER is a released folder name (``mbdpo``,
    ``mbdpo-pixels``) or an algorithm name, which also covers its ``-pixels`` folder unless that is named itself.
    A malformed item or an unknown unit is one :class:`~analysis.AnalysisInputError` naming the bad value.
    """
    if items is None:
        return {}
    if isinstance(items, Mapping):
        pairs = [(str(k), str(v)) for k, v in items.items()]
    else:
        pairs = []
        for item in items:
            for part in (p.strip() for p in str(item).split(",")):
                if not part:
                    continue
                key, sep, value = (s.strip() for s in part.partition("="))
                if not sep or not key or not value:
                    raise AnalysisInputError(f"--step-unit: malformed value {part!r}; expected FOLDER=UNIT with "
                                             f"UNIT one of {', '.join(STEP_UNITS)} (e.g. mbdpo=env)")
                pairs.append((key, value))
    out: dict[str, str] = {}
    for key, value in pairs:
        check_unit(value, f"--step-unit {key}={value}")
        if key in out and out[key] != value:
            raise AnalysisInputError(f"--step-unit: {key!r} given twice with different units ({out[key]}, {value})")
        out[key] = value
    return out


def resolve_unit(folder: str, overrides: Mapping[str, str] | None = None) -> tuple[str, str]:
    """(unit, origin) of a released folder: an override for the folder or for its algorithm (``X`` for
    ``X-pixels``) first, then :data:`PUBLISHED_STEP_UNITS`, then :data:`DEFAULT_PUBLISHED_UNIT`.

    ``origin`` is ``"override"``, ``"declared"`` (with ``", uncertain (FIDELITY.md D1)"`` for the mbdpo folders) or
    ``"default (folder not declared in analysis/units.py)"``.
    """
    overrides = overrides or {}
    algorithm = folder.removesuffix("-pixels")
    if folder in overrides:
        return overrides[folder], "override"
    if algorithm in overrides:
        return overrides[algorithm], "override"
    for name in (folder, algorithm):
        if name in PUBLISHED_STEP_UNITS:
            # A pixel folder of a declared algorithm was written by the same trainer, so it counts the same steps.
            origin = "declared" if name == folder else f"declared for {algorithm} (same trainer)"
            if name in UNCERTAIN_FOLDERS:
                origin += ", uncertain (FIDELITY.md D1)"
            return PUBLISHED_STEP_UNITS[name], origin
    return DEFAULT_PUBLISHED_UNIT, "default (folder not declared in analysis/units.py)"


def readings_note(units, algorithms: Iterable[str] | None = None) -> str:
    """One line for a caption: ``"x: env steps (mbdpo: agent steps × action repeat; tdmpc2: env steps)"``.

    ``units`` is a units table (:data:`UNITS_COLUMNS`, e.g. ``RunSet.step_units``); ``algorithms`` limits it to
    the algorithm labels a figure or table shows. Sources of one label with different readings are all listed.
    """
    if units is None or len(units) == 0:
        return "x: env steps"
    rows = units if algorithms is None else units[units["algorithm"].isin(set(algorithms))]
    per_label: dict[str, list[str]] = {}
    for label, unit in zip(rows["algorithm"], rows["step_unit"]):
        text = reading(unit)
        if text not in per_label.setdefault(label, []):
            per_label[label].append(text)
    parts = [f"{label}: {' / '.join(texts)}" for label, texts in sorted(per_label.items())]
    return "x: env steps" + (f" ({'; '.join(parts)})" if parts else "")
