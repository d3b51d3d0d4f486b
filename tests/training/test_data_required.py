"""Without the shared data folder, data-backed tests skip on a developer machine and fail under CI=true."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TARGET = "tests/training/test_proofwriter.py::test_readers_parse_every_line"


def _pytest(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", TARGET]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def test_missing_shared_data_skips_locally_and_fails_under_ci(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["RECKONING_DATA_DIR"] = str(tmp_path / "no-data-here")
    local = _pytest(env)
    assert local.returncode == 0 and "1 skipped" in local.stdout, local.stdout[-2000:]
    ci = _pytest({**env, "CI": "true"})
    assert ci.returncode != 0 and "CI=true" in ci.stdout, ci.stdout[-2000:]
