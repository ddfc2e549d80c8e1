"""The dependency contract: pyproject bounds the fast-moving stack above, and what is installed is what was tested.

When CI resolves a version outside a declared range (a new release of a package nobody bounded, or a stale
editable install) this fails with the package, the version, the range and the pip command that fixes it.
"""

from __future__ import annotations

from importlib import metadata

import pytest
from packaging.requirements import Requirement

from assistant.stack import DISTRIBUTION, FAST_MOVING, PackageStatus, _pyproject_requirements, stack_status


def declared() -> dict[str, Requirement]:
    return {Requirement(line).name: Requirement(line) for line in _pyproject_requirements()}


def test_every_fast_moving_package_has_a_tested_upper_bound() -> None:
    requirements = declared()
    unbounded = [
        name
        for name in FAST_MOVING
        if name not in requirements
        or not any(spec.operator in ("<", "<=", "==", "~=") for spec in requirements[name].specifier)
    ]
    assert not unbounded, f"declare a tested upper bound in pyproject.toml for: {', '.join(unbounded)}"


def test_installed_versions_are_inside_the_declared_ranges() -> None:
    problems = []
    for name, requirement in declared().items():
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            problems.append(f"{name} is not installed")
            continue
        if not requirement.specifier.contains(version, prereleases=True):
            problems.append(f"{name} {version} is outside {requirement.specifier} (pip install '{requirement}')")
    assert not problems, "installed stack drifted from pyproject.toml:\n" + "\n".join(problems)


def test_the_installed_metadata_is_this_pyproject() -> None:
    """`assistant doctor` reads the installed metadata: a stale install would check against old ranges."""
    installed = sorted(str(Requirement(line)) for line in metadata.requires(DISTRIBUTION) or [] if "extra ==" not in line)
    assert installed == sorted(str(requirement) for requirement in declared().values()), (
        "the installed vlm-assistant metadata differs from pyproject.toml; reinstall with `pip install -e .`"
    )


def test_stack_status_reads_the_real_installed_versions() -> None:
    statuses = {status.name: status for status in stack_status()}
    assert statuses["transformers"].installed == metadata.version("transformers")
    assert statuses["peft"].ok and statuses["transformers"].ok


@pytest.mark.parametrize(
    ("installed", "ok", "problem"),
    [
        ("5.23.0", True, ""),
        ("5.24.9", True, ""),
        ("5.25.0", False, "transformers 5.25.0 is outside the tested range >=5.23,<5.25; pip install 'transformers>=5.23,<5.25'"),
        ("4.57.1", False, "transformers 4.57.1 is outside the tested range"),
        ("5.25.0rc1", False, "outside the tested range"),
        ("not-a-version", False, "outside the tested range"),
        (None, False, "transformers is not installed; pip install 'transformers>=5.23,<5.25'"),
    ],
)
def test_a_package_outside_its_range_says_how_to_fix_it(installed: str | None, ok: bool, problem: str) -> None:
    status = PackageStatus("transformers", ">=5.23,<5.25", installed)
    assert status.ok is ok
    assert problem in status.problem() if problem else status.problem() == ""
