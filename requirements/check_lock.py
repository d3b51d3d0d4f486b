"""Check that requirements.lock honours pyproject.toml (and stamp the lock with pyproject's dependency hash).

    python requirements/check_lock.py            # exit 1, naming each dependency, when they disagree
    python requirements/check_lock.py --stamp    # record pyproject's hash in the lock (requirements/relock.sh does)

Every requirement of the project (base and every extra) must be pinned in the lock (`name==version`) to a
version its pyproject specifier admits, and the lock must carry the hash of pyproject's dependency tables
as written when it was generated, so a dependency changed without relocking fails here, not on a fresh
machine. Standard library and `packaging` only: it runs before anything else is trusted.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
RELOCK = "bash requirements/relock.sh"
HASH_PREFIX = "# pyproject-sha256: "


@dataclass(frozen=True)
class Declared:
    """One requirement as pyproject.toml states it, and where ("dependencies" or "extra 'dev'")."""

    requirement: Requirement
    source: str


def dependency_tables(pyproject: Path) -> dict[str, object]:
    """The parts of pyproject.toml that decide what the lock must hold."""
    project = tomllib.loads(pyproject.read_text())["project"]
    return {
        "requires-python": project.get("requires-python"),
        "dependencies": sorted(project.get("dependencies", [])),
        "optional-dependencies": {
            extra: sorted(reqs) for extra, reqs in sorted(project.get("optional-dependencies", {}).items())
        },
    }


def pyproject_hash(pyproject: Path) -> str:
    # Hash the parsed tables, not the file: comments, formatting and order within a list do not count.
    canonical = json.dumps(dependency_tables(pyproject), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def declared_requirements(pyproject: Path) -> list[Declared]:
    """Base and every extra, less the project's references to itself (`reckoning[serve,train]`)."""
    project = tomllib.loads(pyproject.read_text())["project"]
    name = canonicalize_name(project["name"])
    declared = [Declared(Requirement(r), "dependencies") for r in project.get("dependencies", [])]
    for extra, reqs in project.get("optional-dependencies", {}).items():
        declared += [Declared(Requirement(r), f"extra '{extra}'") for r in reqs]
    return [d for d in declared if canonicalize_name(d.requirement.name) != name]


def locked_versions(lock: Path) -> dict[str, Version]:
    """`name==version` lines of the lock; anything else but comments and pip options is an error."""
    pins: dict[str, Version] = {}
    for number, raw in enumerate(lock.read_text().splitlines(), start=1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith(("#", "-")):
            continue
        try:
            requirement = Requirement(line)
        except InvalidRequirement as exc:
            raise SystemExit(f"{lock.name}:{number}: not a requirement: {raw!r} ({exc})") from exc
        specs = list(requirement.specifier)
        if len(specs) != 1 or specs[0].operator != "==" or "*" in specs[0].version:
            raise SystemExit(f"{lock.name}:{number}: {requirement.name} is not pinned to one version: {raw!r}")
        pins[canonicalize_name(requirement.name)] = Version(specs[0].version)
    return pins


def recorded_hash(lock: Path) -> str | None:
    for line in lock.read_text().splitlines():
        if line.startswith(HASH_PREFIX):
            return line.removeprefix(HASH_PREFIX).strip()
    return None


def problems(pyproject: Path, lock: Path) -> list[str]:
    """Every disagreement between pyproject.toml and the lock, each naming the dependency."""
    found: list[str] = []
    recorded = recorded_hash(lock)
    if recorded is None:
        found.append(f"{lock.name} records no pyproject hash ('{HASH_PREFIX.strip()} ...'); run {RELOCK}")
    elif recorded != pyproject_hash(pyproject):
        found.append(f"pyproject.toml changed since {lock.name} was generated; run {RELOCK}")
    pins = locked_versions(lock)
    for declared in declared_requirements(pyproject):
        requirement = declared.requirement
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue  # not for this platform; the lock is resolved for the one it runs on
        name = canonicalize_name(requirement.name)
        where = f"{requirement.name} (pyproject {declared.source}: '{requirement}')"
        if name not in pins:
            found.append(f"{where} is missing from {lock.name}; run {RELOCK}")
        elif not requirement.specifier.contains(pins[name], prereleases=True):
            found.append(f"{where} is locked at {pins[name]}, outside that range; run {RELOCK}")
    for pinned, version in sorted(pins.items()):
        if version.local is not None:  # e.g. torch 2.13.0+cpu: then only that one build would satisfy the lock
            found.append(f"{pinned}=={version} in {lock.name} has a local label; pin {pinned}=={version.public}")
    return found


def stamp(pyproject: Path, lock: Path) -> None:
    """Record pyproject's hash as the lock's first line (replacing any earlier one)."""
    kept = [line for line in lock.read_text().splitlines() if not line.startswith(HASH_PREFIX)]
    lock.write_text("\n".join([HASH_PREFIX + pyproject_hash(pyproject), *kept]) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--pyproject", type=Path, default=REPO / "pyproject.toml")
    parser.add_argument("--lock", type=Path, default=REPO / "requirements.lock")
    parser.add_argument("--stamp", action="store_true", help="write pyproject's hash into the lock, then check")
    args = parser.parse_args(argv)
    if not args.lock.is_file():
        print(f"check_lock: {args.lock} not found; run {RELOCK}", file=sys.stderr)
        return 1
    if args.stamp:
        stamp(args.pyproject, args.lock)
    found = problems(args.pyproject, args.lock)
    for problem in found:
        print(f"check_lock: {problem}", file=sys.stderr)
    if found:
        return 1
    print(f"check_lock: {args.lock.name} honours {args.pyproject.name} ({len(locked_versions(args.lock))} pins)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
