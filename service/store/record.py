"""KnowledgeRecord: the durable part of a knowledge set, as every store keeps it (JSON)."""

import json
from dataclasses import asdict, dataclass


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

    @property
    def n_facts(self) -> int:
        return len(self.facts)

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> "KnowledgeRecord":
        return cls(**json.loads(raw))
