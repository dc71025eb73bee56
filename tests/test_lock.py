"""The lock file pins every dependency, within pyproject's ranges, at the versions tested."""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent


def _locked() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (ROOT / "requirements.lock").read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, version = line.partition("==")
        assert sep and version, f"requirements.lock: {line!r} is not pinned with =="
        pins[canonicalize_name(name)] = version
    return pins


def _declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    lines = [*project["dependencies"], *project["optional-dependencies"]["test"]]
    return [r for r in map(Requirement, lines) if r.marker is None or r.marker.evaluate()]


def test_every_dependency_is_locked_within_its_range() -> None:
    locked = _locked()
    problems = []
    for req in _declared():
        version = locked.get(canonicalize_name(req.name))
        if version is None:
            problems.append(f"{req.name} is not in requirements.lock (run scripts/lock.py)")
        elif not req.specifier.contains(version, prereleases=True):
            problems.append(f"{req.name}=={version} is outside pyproject's {req.specifier}")
    assert not problems, problems


def test_the_environment_runs_the_locked_versions() -> None:
    locked = _locked()
    names = {canonicalize_name(r.name) for r in _declared()}
    drift = {
        name: (locked[name], metadata.version(name))
        for name in names
        if name in locked and metadata.version(name) != locked[name]
    }
    assert not drift, f"installed versions differ from the lock (run scripts/lock.py): {drift}"
