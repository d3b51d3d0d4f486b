"""requirements/check_lock.py: passes on the committed files, fails naming the dependency when they disagree."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CHECK = REPO / "requirements" / "check_lock.py"
STALE = "pyproject.toml changed since requirements.lock was generated; run bash requirements/relock.sh"


def check(pyproject: Path, lock: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(CHECK), "--pyproject", str(pyproject), "--lock", str(lock)]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


@pytest.fixture
def copies(tmp_path: Path) -> tuple[Path, Path]:
    pyproject, lock = tmp_path / "pyproject.toml", tmp_path / "requirements.lock"
    shutil.copy(REPO / "pyproject.toml", pyproject)
    shutil.copy(REPO / "requirements.lock", lock)
    return pyproject, lock


def test_the_committed_lock_honours_pyproject() -> None:
    result = check(REPO / "pyproject.toml", REPO / "requirements.lock")
    assert result.returncode == 0, result.stderr
    assert "honours" in result.stdout


def test_the_lock_pins_the_cpu_torch_without_its_local_label() -> None:
    [torch] = [line for line in (REPO / "requirements" / "torch.in").read_text().splitlines() if line[:1].isalpha()]
    assert torch == "torch==2.13.0"  # the pin README, .ci/run and docker/Dockerfile install first
    assert torch in (REPO / "requirements.lock").read_text().splitlines()


def test_a_dependency_added_without_relocking_fails(copies: tuple[Path, Path]) -> None:
    pyproject, lock = copies
    text = pyproject.read_text()
    assert "dependencies = [\n" in text
    pyproject.write_text(text.replace("dependencies = [\n", 'dependencies = [\n    "left-pad-nowhere>=1",\n', 1))
    result = check(pyproject, lock)
    assert result.returncode == 1
    assert STALE in result.stderr
    assert "left-pad-nowhere (pyproject dependencies: 'left-pad-nowhere>=1') is missing" in result.stderr


def test_a_pin_outside_pyprojects_range_is_named(copies: tuple[Path, Path]) -> None:
    pyproject, lock = copies
    lock.write_text(lock.read_text().replace("\npytest==9.2.0\n", "\npytest==7.4.0\n"))
    result = check(pyproject, lock)
    assert result.returncode == 1
    assert "pytest (pyproject extra 'dev': 'pytest>=8') is locked at 7.4.0, outside that range" in result.stderr
    assert STALE not in result.stderr  # pyproject itself did not change


def test_a_lock_without_the_hash_or_with_a_local_label_fails(copies: tuple[Path, Path]) -> None:
    pyproject, lock = copies
    lines = [line for line in lock.read_text().splitlines() if not line.startswith("# pyproject-sha256:")]
    lock.write_text("\n".join(lines).replace("\ntorch==2.13.0\n", "\ntorch==2.13.0+cpu\n") + "\n")
    result = check(pyproject, lock)
    assert result.returncode == 1
    assert "records no pyproject hash" in result.stderr
    assert "torch==2.13.0+cpu in requirements.lock has a local label; pin torch==2.13.0" in result.stderr
