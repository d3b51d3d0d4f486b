"""KnowledgeRecord: the durable part of a knowledge set, as every store keeps it (JSON)."""

import json
from dataclasses import asdict, dataclass, fields, replace
from typing import Any


class RecordError(ValueError):
    """A stored record that cannot be read back as a KnowledgeRecord."""


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
    mac: str = ""  # keyed MAC over everything above, the tenant and the id (service.integrity)

    @property
    def n_facts(self) -> int:
        return len(self.facts)

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, separators=(",", ":"))

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
            raise RecordError(f"knowledge record is not JSON: {type(exc).__name__}") from exc
        if not isinstance(data, dict) or set(data) - {f.name for f in fields(cls)}:
            raise RecordError("knowledge record has unknown fields")
        try:
            record = cls(**data)
        except TypeError as exc:
            raise RecordError("knowledge record lacks fields") from exc
        if not isinstance(record.facts, list) or not all(isinstance(f, str) for f in record.facts):
            raise RecordError("knowledge record facts are not a list of strings")
        return record
