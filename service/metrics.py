"""Every Prometheus metric of the service, defined once (names are a contract; no knowledge id in labels)."""

from prometheus_client import Counter, Gauge, Histogram, make_asgi_app
from prometheus_client.registry import REGISTRY
from starlette.types import ASGIApp

from service.store import Eviction

ENCODE_SECONDS = Histogram(
    "reckoning_encode_seconds",
    "Wall time of one inner loop (encode or re-encode), serialization included.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
ASK_SECONDS = Histogram(
    "reckoning_ask_seconds",
    "Wall time of one /ask request: store lookups, any re-encode, and the batched forward.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
REQUESTS = Counter(
    "reckoning_requests",  # exposed as reckoning_requests_total
    "HTTP requests by route template and status code.",
    ["route", "status"],
)
DELTA_CACHE_HITS = Counter("reckoning_delta_cache_hits", "Delta lookups that found a usable delta.")
DELTA_CACHE_MISSES = Counter(
    "reckoning_delta_cache_misses", "Delta lookups that found no usable delta (absent, expired, evicted or rejected)."
)
REENCODES = Counter("reckoning_reencodes", "Inner loops re-run from stored facts because the delta was unusable.")
DELTA_BYTES = Histogram(
    "reckoning_delta_bytes",
    "Serialized size of one delta.",
    buckets=tuple(float(2**k) for k in range(10, 32, 2)),  # 1 KiB .. 1 GiB
)
INNER_LOSS = Histogram(
    "reckoning_inner_loss",
    "Fact loss after the last inner step of an encode.",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0),
)

# Beyond the contract: why cached deltas were refused, and what the embedded LRU drops.
DELTA_REJECTED = Counter("reckoning_delta_rejected", "Cached deltas refused before use, by error type.", ["reason"])
DELTA_EVICTIONS = Counter("reckoning_delta_evictions", "Deltas dropped by the embedded LRU.", ["reason"])
STORE_UNAVAILABLE = Counter("reckoning_store_unavailable", "Requests answered 503 because the store was unreachable.")
WEIGHT_CACHE_HITS = Counter(
    "reckoning_weight_cache_hits", "Asks served from cached ready weights (no checksum, deserialization or merge)."
)
WEIGHT_CACHE_MISSES = Counter("reckoning_weight_cache_misses", "Asks whose delta had to be verified and merged.")
WEIGHT_CACHE_BYTES = Gauge("reckoning_weight_cache_bytes", "Bytes held by the in-process cache of ready weights.")
WEIGHT_CACHE_LIMIT_BYTES = Gauge(
    "reckoning_weight_cache_limit_bytes", "Byte bound of the in-process cache of ready weights (0 = off)."
)
ENCODES_IN_FLIGHT = Gauge(
    "reckoning_encodes_in_flight", "Inner loops admitted and not finished (waiting for a slot, queued or running)."
)
ENCODES_CANCELLED = Counter(
    "reckoning_encodes_cancelled", "Inner loops dropped before they ran because every caller waiting for them left."
)
THROTTLED = Counter(
    "reckoning_throttled",
    "Requests refused to protect the server or other tenants (429 or 403), by reason.",
    ["reason"],  # encode_queue_full | rate_limit | encode_rate_limit | tenant_max_knowledge_sets | tenant_max_bytes
)
RATE_LIMIT_ERRORS = Counter(
    "reckoning_rate_limit_errors", "Rate-limit checks that failed in their store (the request was let through)."
)
RECORDS_REJECTED = Counter(
    "reckoning_records_rejected", "Stored facts records refused (MAC or id mismatch, unreadable): answered 409."
)
FLIGHTS_SHARED_ACROSS_PROCESSES = Counter(
    "reckoning_flights_shared_across_processes",
    "(Re-)encodes skipped because another process made the delta while this one waited on its lock.",
)

CONTRACT_METRICS = (
    "reckoning_encode_seconds",
    "reckoning_ask_seconds",
    "reckoning_requests_total",
    "reckoning_delta_cache_hits_total",
    "reckoning_delta_cache_misses_total",
    "reckoning_reencodes_total",
    "reckoning_delta_bytes",
    "reckoning_inner_loss",
)


def record_eviction(event: Eviction) -> None:
    """Eviction hook handed to the embedded store."""
    DELTA_EVICTIONS.labels(reason=event.reason).inc()


def metrics_app() -> ASGIApp:
    """The prometheus-client ASGI app, mounted at /metrics."""
    return make_asgi_app(registry=REGISTRY)
