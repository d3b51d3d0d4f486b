"""The pre-merged weight LRU: byte bound, recency, and never serving weights for a different stored delta (MAC)."""

import torch

from reckoning_core.reckoner import MergedWeights
from service.weight_cache import WeightCache


def _weights(n_floats: int) -> MergedWeights:
    return MergedWeights({"w": torch.zeros(n_floats)}, n_floats * 4)


def test_hit_needs_the_same_mac_and_a_changed_mac_drops_the_entry() -> None:
    cache = WeightCache(10_000)
    w = _weights(10)
    cache.put(("t", "a"), "blob-a", w)
    assert cache.get(("t", "a"), "blob-a") is w
    assert cache.get(("t", "a"), "".join(["blob", "-a"])) is w  # an equal string, another object
    assert cache.get(("t", ""), "blob-a") is None  # another id (or tenant) never shares
    assert cache.get(("u", "a"), "blob-a") is None
    assert cache.get(("t", "a"), "blob-A") is None  # changed in the store
    assert len(cache) == 0 and cache.nbytes == 0
    assert cache.get(("t", "a"), "blob-a") is None  # gone for good, not resurrected


def test_byte_bound_evicts_least_recently_used_and_refuses_oversize() -> None:
    cache = WeightCache(3 * (100 + 6))
    for k in "abc":
        cache.put(("t", k), "blob-" + k, _weights(25))  # 100 + 6 bytes each
    assert cache.get(("t", "a"), "blob-a") is not None  # a is now the most recent
    cache.put(("t", "d"), "blob-d", _weights(25))
    assert cache.get(("t", ""), "blob-") is None  # b was least recently used
    assert {k for k in "acd" if cache.get(("t", k), "blob-" + k)} == set("acd")
    assert cache.nbytes == 3 * 106
    cache.put(("t", "huge"), "x", _weights(1000))
    assert cache.get(("t", "huge"), "x") is None and cache.nbytes == 3 * 106
    cache.drop(("t", "a"))
    assert cache.nbytes == 2 * 106


def test_zero_bytes_disables_the_cache() -> None:
    cache = WeightCache(0)
    cache.put(("t", "a"), "blob", _weights(1))
    assert cache.get(("t", "a"), "blob") is None and len(cache) == 0


def test_weights_built_across_an_invalidation_are_not_cached() -> None:
    cache = WeightCache(10_000)
    cache.put(("t", "a"), "blob-a", _weights(10))
    seen = cache.version  # an ask reads the version, then loads blob-b (awaiting the torch pool) ...
    cache.invalidate(("t", ""))  # ... while a DELETE of that id lands
    cache.put(("t", ""), "blob-", _weights(10), seen)
    assert cache.get(("t", ""), "blob-") is None and len(cache) == 1
    cache.invalidate(("t", "a"))
    assert cache.get(("t", "a"), "blob-a") is None and cache.nbytes == 0
    cache.put(("t", ""), "blob-", _weights(10), cache.version)  # nothing invalidated since: cached
    assert cache.get(("t", ""), "blob-") is not None
