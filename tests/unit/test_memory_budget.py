"""The weight cache's default size: a share of the memory the process may use (cgroup limit, else RAM)."""

import asyncio
from pathlib import Path

import psutil
import pytest

from service.memory_budget import (
    MAX_AUTO_BYTES,
    MIN_AUTO_BYTES,
    auto_weight_cache_bytes,
    cgroup_limit_bytes,
    memory_limit_bytes,
)
from service.settings import Settings
from tests.unit.inprocess import serving

GiB = 1 << 30
MiB = 1 << 20


def _cgroup(root: Path, name: str, text: str) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return root


def test_cgroup_v2_limit_is_read_and_max_means_unlimited(tmp_path: Path) -> None:
    assert cgroup_limit_bytes(_cgroup(tmp_path / "a", "memory.max", "2147483648\n")) == 2 * GiB
    assert cgroup_limit_bytes(_cgroup(tmp_path / "b", "memory.max", "max\n")) is None
    assert cgroup_limit_bytes(tmp_path / "none") is None  # no cgroup files at all: no limit


def test_cgroup_v1_limit_is_read_and_its_unlimited_sentinel_ignored(tmp_path: Path) -> None:
    assert cgroup_limit_bytes(_cgroup(tmp_path / "a", "memory/memory.limit_in_bytes", "1073741824")) == GiB
    assert cgroup_limit_bytes(_cgroup(tmp_path / "b", "memory/memory.limit_in_bytes", "9223372036854771712")) is None


def test_an_unparsable_limit_is_an_error_that_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"memory\.max"):
        cgroup_limit_bytes(_cgroup(tmp_path, "memory.max", "lots"))


def test_the_limit_is_the_smaller_of_the_cgroup_and_the_machine(tmp_path: Path) -> None:
    ram = int(psutil.virtual_memory().total)
    assert memory_limit_bytes(_cgroup(tmp_path / "small", "memory.max", str(GiB))) == min(GiB, ram)
    assert memory_limit_bytes(_cgroup(tmp_path / "huge", "memory.max", str(1 << 50))) == ram
    assert memory_limit_bytes(tmp_path / "none") == ram


@pytest.mark.parametrize(
    ("limit", "expected"),
    [
        (256 * MiB, 128 * MiB),  # a tiny container: never more than half of it
        (1 * GiB, 256 * MiB),  # the old fixed default is the floor
        (4 * GiB, 512 * MiB),  # an eighth
        (24 * GiB, MAX_AUTO_BYTES),  # capped
    ],
)
def test_auto_size_is_an_eighth_within_bounds(limit: int, expected: int) -> None:
    assert auto_weight_cache_bytes(limit) == expected
    assert auto_weight_cache_bytes(limit) <= max(limit // 2, MIN_AUTO_BYTES)


def test_the_app_sizes_its_weight_cache_from_memory_unless_told(tiny_gpt2: Path, tmp_path: Path) -> None:
    def cfg(**kw: object) -> Settings:
        return Settings(_env_file=None, model_dir=tiny_gpt2, sqlite_path=tmp_path / "k.sqlite3", torch_threads=1, **kw)  # type: ignore[call-arg, arg-type]

    async def bound(settings: Settings) -> int:
        async with serving(settings) as (app, client):
            metrics = (await client.get("/metrics")).text
            line = next(x for x in metrics.splitlines() if x.startswith("reckoning_weight_cache_limit_bytes "))
            assert int(float(line.split()[1])) == app.state.knowledge.weights.max_bytes
            return int(app.state.knowledge.weights.max_bytes)

    assert asyncio.run(bound(cfg())) == auto_weight_cache_bytes(memory_limit_bytes())
    assert asyncio.run(bound(cfg(weight_cache_bytes=3 * MiB))) == 3 * MiB
