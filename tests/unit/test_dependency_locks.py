"""The locks in requirements/ (`make lock`) against pyproject.toml and each other.

- every lock pins each package with `==` to one release, with the hashes pip checks;
- image.lock (what the Dockerfile installs) pins each package exactly as test.lock (what CI
  installs) does, so the image runs only versions CI tested;
- every direct dependency in pyproject.toml is in image.lock, within its range; those of
  the `test` extra (and of `local`, which it includes) are in test.lock, and those of the
  `local` extra (PostgreSQL, the JDK, Node.js) are not in the image;
- the venv and the image install from those locks, with hashes required.
"""

import re
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from services.platform.settings import PROJECT_ROOT

REQUIREMENTS = PROJECT_ROOT / "requirements"
TEST_LOCK = REQUIREMENTS / "test.lock"
IMAGE_LOCK = REQUIREMENTS / "image.lock"
LOCKS = (TEST_LOCK, IMAGE_LOCK, REQUIREMENTS / "pip.lock", REQUIREMENTS / "uv-tool.lock")
PROJECT = canonicalize_name("wallet-ledger")
# The environment the locks are resolved for (the Makefile's LOCK_COMPILE), the image's;
# Marker.evaluate takes the rest from this interpreter.
LOCK_ENVIRONMENT: dict[str, str] = {
    "python_version": "3.11",
    "python_full_version": "3.11.0",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
}
_HASH = re.compile(r"--hash=sha256:[0-9a-f]{64}")


def _logical_lines(path: Path) -> list[str]:
    """The requirement lines of a requirements file: continuations joined, comments and
    blank lines dropped."""
    joined = re.sub(r"\\\n", " ", path.read_text())
    lines = (line.split(" #", 1)[0].strip() for line in joined.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


@cache
def _entries(path: Path) -> dict[NormalizedName, tuple[Requirement, list[str]]]:
    """Package -> (its requirement, its hash options) in a lock."""
    entries: dict[NormalizedName, tuple[Requirement, list[str]]] = {}
    for line in _logical_lines(path):
        assert not line.startswith("-"), f"{path.name}: unexpected option line {line!r}"
        requirement_text, *options = line.split(" --")
        requirement = Requirement(requirement_text.strip())
        name = canonicalize_name(requirement.name)
        assert name not in entries, f"{path.name}: {name} is listed twice"
        entries[name] = (requirement, [f"--{option.strip()}" for option in options])
    return entries


def pins(path: Path) -> dict[NormalizedName, Version]:
    """Package -> the one version a lock pins it to."""
    result = {}
    for name, (requirement, _) in _entries(path).items():
        (specifier,) = requirement.specifier
        result[name] = Version(specifier.version)
    return result


def _project_table() -> dict[str, Any]:
    project: dict[str, Any] = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())[
        "project"
    ]
    return project


def direct_requirements(extra: str | None = None) -> list[Requirement]:
    """[project].dependencies, or an extra's, with the project's own extras (the `test`
    extra's `wallet-ledger[local]`) expanded; only those that apply on the lock's platform."""
    project = _project_table()
    texts: list[str] = (
        project["dependencies"] if extra is None else project["optional-dependencies"][extra]
    )
    result = []
    for text in texts:
        requirement = Requirement(text)
        if requirement.marker and not requirement.marker.evaluate(LOCK_ENVIRONMENT):
            continue
        if canonicalize_name(requirement.name) == PROJECT:
            for own_extra in sorted(requirement.extras):
                result.extend(direct_requirements(own_extra))
            continue
        result.append(requirement)
    return result


@pytest.mark.parametrize("lock", LOCKS, ids=lambda path: path.name)
def test_every_line_is_one_pinned_release_with_hashes(lock: Path) -> None:
    assert lock.is_file(), f"{lock} is missing: run `make lock`"
    entries = _entries(lock)
    assert entries, f"{lock.name} pins nothing"
    for name, (requirement, options) in entries.items():
        specifiers = list(requirement.specifier)
        assert len(specifiers) == 1, f"{lock.name}: {requirement} is not one pin"
        (specifier,) = specifiers
        assert specifier.operator == "==", f"{lock.name}: {requirement} is not pinned with =="
        assert "*" not in specifier.version, f"{lock.name}: {requirement} is a wildcard"
        assert requirement.url is None, f"{lock.name}: {name} comes from a URL"
        assert not requirement.marker, f"{lock.name}: {requirement} has a marker"
        assert options, f"{lock.name}: {name} has no --hash"
        for option in options:
            assert _HASH.fullmatch(option), f"{lock.name}: {name}: {option!r} is not a sha256"


def test_image_pins_are_the_tested_pins() -> None:
    tested, image = pins(TEST_LOCK), pins(IMAGE_LOCK)
    untested = sorted(name for name in image if name not in tested)
    assert not untested, f"image.lock has packages test.lock does not: {untested}"
    differ = {name: (str(version), str(tested[name])) for name, version in image.items()}
    differ = {name: pair for name, pair in differ.items() if pair[0] != pair[1]}
    assert not differ, f"image.lock pins differ from test.lock's (image, test): {differ}"


def test_the_runtime_dependencies_are_in_the_image_lock_within_their_ranges() -> None:
    image = pins(IMAGE_LOCK)
    requirements = direct_requirements()
    assert requirements
    for requirement in requirements:
        name = canonicalize_name(requirement.name)
        assert name in image, f"{requirement} is not in image.lock: run `make lock`"
        assert requirement.specifier.contains(image[name], prereleases=True), (
            f"image.lock pins {name}=={image[name]}, outside {requirement}: run `make lock`"
        )


@pytest.mark.parametrize("extra", ["test", "local"])
def test_the_extras_are_in_the_test_lock_within_their_ranges(extra: str) -> None:
    tested = pins(TEST_LOCK)
    requirements = direct_requirements(extra)
    assert requirements
    for requirement in [*requirements, *direct_requirements()]:
        name = canonicalize_name(requirement.name)
        assert name in tested, f"{requirement} is not in test.lock: run `make lock`"
        assert requirement.specifier.contains(tested[name], prereleases=True), (
            f"test.lock pins {name}=={tested[name]}, outside {requirement}: run `make lock`"
        )


def test_the_image_lock_has_no_test_or_local_only_package() -> None:
    image = pins(IMAGE_LOCK)
    for requirement in direct_requirements("local"):
        assert canonicalize_name(requirement.name) not in image, (
            f"{requirement.name} (the local stack's) is in image.lock"
        )
    assert PROJECT not in image
    for tool in ("pytest", "mypy", "ruff", "moto", "grpcio-tools"):
        assert tool not in image, f"{tool} (test extra) is in image.lock"


def _pip_installs(path: Path) -> list[str]:
    """The `pip install` commands in a Makefile or Dockerfile (comments left out)."""
    commands = []
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("#"):
            continue
        for part in re.split(r"&&|;", line):
            if "pip install" in part:
                commands.append(" ".join(part.rstrip(" \\").split()))
    return commands


def _installs_lock(commands: list[str], lock: str) -> bool:
    return any(
        "--require-hashes" in command.split() and f"requirements/{lock}" in command.split()
        for command in commands
    )


def test_the_venv_and_the_image_install_from_the_locks() -> None:
    makefile = _pip_installs(PROJECT_ROOT / "Makefile")
    dockerfile = _pip_installs(PROJECT_ROOT / "Dockerfile")
    assert _installs_lock(makefile, "test.lock"), makefile
    assert _installs_lock(makefile, "pip.lock"), makefile
    assert _installs_lock(dockerfile, "image.lock"), dockerfile
    assert _installs_lock(dockerfile, "pip.lock"), dockerfile
    assert any(command.endswith("--no-deps -e .") for command in makefile), makefile
    assert any(command.endswith("--no-deps .") for command in dockerfile), dockerfile
    # .dockerignore lets in only what it names: the locks the image installs too.
    allowed = (PROJECT_ROOT / ".dockerignore").read_text().splitlines()
    for lock in ("pip.lock", "image.lock"):
        assert f"!requirements/{lock}" in allowed, f".dockerignore keeps out {lock}"
    # Nothing else resolves ranges: every other install names a lock or takes no
    # dependencies (checkov has a venv of its own, pinned in the Makefile).
    for command in [*makefile, *dockerfile]:
        if "CHECKOV" in command:
            continue
        words = command.split()
        assert "--no-deps" in words or "--require-hashes" in words, f"unlocked: {command!r}"
