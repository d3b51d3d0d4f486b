"""KnowledgeRecord: the durable part of a knowledge set, stored as versioned JSON by every store."""

import json
from dataclasses import MISSING, asdict, dataclass, fields, replace
from typing import Any

# Adding a field (with a default) keeps the version: older records load with the default, and a server that
# does not know the field yet ignores it. Renaming, removing or changing the meaning of one bumps the version,
# and from_json converts the older versions it still reads.
RECORD_VERSION = 1


class UnreadableRecord(ValueError):
    """A stored record this server cannot read: another record version, or not a record at all."""


@dataclass(frozen=True)
class KnowledgeRecord:
    """The durable part of a knowledge set: its facts (the source of truth) and metadata."""

    knowledge_id: str
    facts: list[str]
    created: float  # unix seconds
    model: str
    fingerprint: str
    recall: float
    final_inner_loss: float
    delta_bytes: int
    ttl_s: int  # TTL used for the cached delta, reused when it is re-encoded
    encode_ms: float
    mac: str = ""  # keyed MAC over every other field, the tenant and the id (service.integrity)

    @property
    def n_facts(self) -> int:
        return len(self.facts)

    def to_json(self) -> str:
        return json.dumps({"version": RECORD_VERSION, **asdict(self)}, ensure_ascii=False, separators=(",", ":"))

    def unsigned_json(self) -> bytes:
        """The canonical bytes the MAC covers: every field but the MAC itself."""
        content = {k: v for k, v in asdict(self).items() if k != "mac"}
        return json.dumps(content, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8")

    def signed(self, mac: str) -> "KnowledgeRecord":
        return replace(self, mac=mac)

    @property
    def nbytes(self) -> int:
        """Bytes the store keeps for this record (what a tenant's byte quota counts)."""
        return len(self.to_json().encode("utf-8"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> "KnowledgeRecord":
        try:
            data: Any = json.loads(raw)
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise UnreadableRecord(f"a knowledge record is JSON, this is not ({type(exc).__name__})") from exc
        if not isinstance(data, dict):
            raise UnreadableRecord(f"a knowledge record is a JSON object, not {type(data).__name__}")
        version = data.pop("version", 1)  # records written before the version field are version 1
        if version != RECORD_VERSION:
            raise UnreadableRecord(f"knowledge record version {version!r}; this server reads version {RECORD_VERSION}")
        known = {f.name for f in fields(cls)}
        required = {f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING}
        missing = sorted(required - data.keys())
        if missing:
            raise UnreadableRecord(f"knowledge record lacks {', '.join(missing)}")
        record = cls(**{k: v for k, v in data.items() if k in known})
        if not isinstance(record.facts, list) or not all(isinstance(f, str) for f in record.facts):
            raise UnreadableRecord("knowledge record facts are not a list of strings")
        return record
