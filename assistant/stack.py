"""The dependency contract: the version ranges this release was tested with, and how the installed stack compares.

The ranges come from the installed package's own metadata (`pyproject.toml`'s `dependencies`), so there is one
source of truth; a source checkout that is not installed reads `pyproject.toml` directly. Pure Python: nothing
here imports the packages it checks (versions come from their metadata), so `assistant doctor` and the start-up
check stay fast and work even when a package is broken.
"""

from __future__ import annotations

import logging
import sys
import tomllib
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import InvalidVersion, Version

log = logging.getLogger(__name__)

DISTRIBUTION = "vlm-assistant"

FAST_MOVING = (
    "torch",
    "torchvision",
    "transformers",
    "tokenizers",
    "accelerate",
    "peft",
    "bitsandbytes",
    "textual",
    "textual-image",
    "av",
)
"""The stack whose minor releases break each other: each must have a tested upper bound."""


@dataclass(frozen=True)
class PackageStatus:
    """One declared dependency and what is installed."""

    name: str
    specifier: str
    """The declared range, e.g. '>=5.23,<5.25' ('' when unbounded)."""
    installed: str | None
    """The installed version, None when missing."""

    @property
    def ok(self) -> bool:
        if self.installed is None:
            return False
        try:
            return Requirement(f"{self.name}{self.specifier}").specifier.contains(Version(self.installed), prereleases=True)
        except (InvalidVersion, InvalidRequirement):
            return False

    @property
    def fix(self) -> str:
        """The pip command that puts this package back in its tested range."""
        return f"pip install '{self.name}{self.specifier}'"

    def problem(self) -> str:
        """One line saying what is wrong and what to do ('' when fine)."""
        if self.installed is None:
            return f"{self.name} is not installed; {self.fix}"
        if not self.ok:
            return f"{self.name} {self.installed} is outside the tested range {self.specifier}; {self.fix}"
        return ""


def declared_requirements() -> list[Requirement]:
    """The runtime requirements that apply on this platform (markers evaluated), in declaration order."""
    try:
        lines = metadata.requires(DISTRIBUTION) or []
    except metadata.PackageNotFoundError:
        lines = _pyproject_requirements()
    environment = default_environment()
    requirements = []
    for line in lines:
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue
        if requirement.marker is not None and not requirement.marker.evaluate({**environment, "extra": ""}):
            continue  # test extras and other platforms' packages
        requirements.append(requirement)
    return requirements


def _pyproject_requirements() -> list[str]:
    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    try:
        with pyproject.open("rb") as file:
            return list(tomllib.load(file)["project"]["dependencies"])
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return []


def installed_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def stack_status() -> list[PackageStatus]:
    """Every declared runtime dependency with its installed version."""
    return [
        PackageStatus(requirement.name, _readable(requirement), installed_version(requirement.name))
        for requirement in declared_requirements()
    ]


def _readable(requirement: Requirement) -> str:
    """The range lower bound first ('>=5.23,<5.25'), as people write it."""
    return ",".join(sorted((str(spec) for spec in requirement.specifier), key=lambda spec: (not spec.startswith(">"), spec)))


def stack_problems() -> list[str]:
    """One line per dependency that is missing or outside its tested range."""
    return [status.problem() for status in stack_status() if not status.ok]


_warned = False


def warn_untested_stack() -> None:
    """At start-up: say once, on stderr, which installed versions were never tested together.

    A warning, not a refusal: an untested version usually works, and the user may be trying a newer release on
    purpose. What used to break deep inside a reply (transformers' PEFT gate) is no longer on our path.
    """
    global _warned
    if _warned:
        return
    _warned = True
    try:
        problems = stack_problems()
    except Exception:  # noqa: BLE001 - a metadata oddity must never stop the app
        log.exception("could not check the installed versions")
        return
    for problem in problems:
        log.warning("untested dependency: %s", problem)
        print(f"warning: {problem} (see `assistant doctor`)", file=sys.stderr)
