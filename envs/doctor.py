"""`mbdpo-bench doctor`: the installed versions of what the harness runs on, and known-bad combinations flagged
before a run fails obscurely (shared/notes/DEPENDENCIES.md records how each was found)."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata

PACKAGES = ("torch", "numpy", "gymnasium", "mujoco", "dm_control", "metaworld", "myosuite", "mani_skill2", "sapien",
            "pandas", "arch", "rliable", "matplotlib", "scipy", "setuptools", "snakemake",
            "snakemake-executor-plugin-slurm")


def _version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for piece in version.split("+")[0].split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


@dataclass(frozen=True)
class Rule:
    """``package`` at version ``at_least`` or later breaks ``breaks`` when that one is installed too."""

    package: str
    at_least: str
    breaks: str
    why: str

    def applies(self, versions: dict[str, str | None]) -> bool:
        have = versions.get(self.package)
        return bool(have) and versions.get(self.breaks) is not None and \
            _version_tuple(have) >= _version_tuple(self.at_least)


KNOWN_BAD = (
    Rule("mujoco", "3.17", "metaworld", "mujoco >= 3.17 breaks metaworld 3.0's reset (eq_data 11 -> 12: 'could not "
         "broadcast (11,) into (12,)'); pin mujoco==3.16.0"),
    Rule("mujoco", "4.0", "dm_control", "mujoco 4 breaks dm_control 1.0.49; pin mujoco==3.16.0"),
    Rule("gymnasium", "1.3", "myosuite", "myosuite 3.0.0 requires gymnasium < 1.3"),
    Rule("pandas", "3.0", "arch", "pandas 3 breaks arch 7.2, which rliable needs; pin pandas==2.3.3"),
    Rule("numpy", "1.24", "mani_skill2", "mani-skill2 0.5.3 needs numpy < 1.24 (numpy 2 segfaults its IK "
         "controller): use its own environment (workflow/envs/maniskill2.yaml)"),
    Rule("setuptools", "81", "myosuite", "setuptools >= 81 drops pkg_resources, which simulators still import; "
         "pin setuptools==80.10.2"),
    Rule("metaworld", "3.1", "metaworld", "metaworld 3.1 pins mujoco 3.3.0 (a silent downgrade); use 3.0.0"),
    Rule("dm_control", "1.0.50", "metaworld", "dm_control >= 1.0.50 asks mujoco >= 3.17, which breaks metaworld; "
         "use dm_control==1.0.49"),
)

def installed_versions(packages: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    out = {}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def problems(versions: dict[str, str | None]) -> list[str]:
    """Known-bad combinations among ``versions`` (package -> version or None), each with its fix."""
    out = []
    for rule in KNOWN_BAD:
        if rule.applies(versions):
            other = "" if rule.breaks == rule.package else f" with {rule.breaks} {versions[rule.breaks]}"
            out.append(f"{rule.package} {versions[rule.package]}{other}: {rule.why}")
    return out
