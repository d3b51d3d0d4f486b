"""The memory this process may use (a container's cgroup limit, else the machine's RAM), and the weight cache's
default share of it.

A replica's distinct-id throughput depends on whether its working set of knowledge sets fits in the weight
cache: an ask for a cached id costs its forward pass; any other ask first fetches, authenticates, deserializes
and factors a ~0.7 MB blob. A fixed 256 MiB held about 190 sets of the default model and ran 1,000 distinct
ids at 0.63 of a hot id's asks/s (results/full/bench.json as of commit 477c714; the memory-sized default
ran them at 0.98 in the same bench, results/full/bench.json now). The default is therefore a share of
the memory the process may use, bounded both ways: small containers keep the old bound, large machines do not
hold more than MAX_AUTO_BYTES of weights that a restart would have to rebuild anyway.
"""

from pathlib import Path

import psutil

CGROUP_ROOT = Path("/sys/fs/cgroup")
AUTO_SHARE = 8  # an eighth of the memory limit
MIN_AUTO_BYTES = 256 * 1024 * 1024
MAX_AUTO_BYTES = 2 * 1024 * 1024 * 1024
# cgroup v1 reports "no limit" as a page-rounded 2**63 - 1; anything at or above this is unlimited
_UNLIMITED = 1 << 60


def _read_limit(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if text == "max":
        return None
    try:
        value = int(text)
    except ValueError as exc:
        raise ValueError(f"unreadable memory limit in {path}: {text!r}") from exc
    return value if 0 < value < _UNLIMITED else None


def cgroup_limit_bytes(root: Path = CGROUP_ROOT) -> int | None:
    """The container's memory limit: cgroup v2 memory.max, else v1 memory.limit_in_bytes; None if unlimited."""
    for name in ("memory.max", "memory/memory.limit_in_bytes"):
        limit = _read_limit(root / name)
        if limit is not None:
            return limit
    return None


def memory_limit_bytes(root: Path = CGROUP_ROOT) -> int:
    """What this process may use: the smaller of the cgroup limit (when set) and the machine's RAM."""
    total = int(psutil.virtual_memory().total)
    limit = cgroup_limit_bytes(root)
    return total if limit is None else min(limit, total)


def auto_weight_cache_bytes(limit_bytes: int) -> int:
    """An eighth of `limit_bytes`, within [MIN_AUTO_BYTES, MAX_AUTO_BYTES] (the minimum never above half the limit)."""
    floor = min(MIN_AUTO_BYTES, limit_bytes // 2)
    return max(floor, min(MAX_AUTO_BYTES, limit_bytes // AUTO_SHARE))
