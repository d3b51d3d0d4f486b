"""KnowledgeRecord: the durable part of a knowledge set, stored as versioned JSON by every store."""

import json
from dataclasses import MISSING, asdict, dataclass, fields

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

    @property
    def n_facts(self) -> int:
        return len(self.facts)

    def to_json(self) -> str:
        return json.dumps({"version": RECORD_VERSION, **asdict(self)}, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> "KnowledgeRecord":
        data = json.loads(raw)
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
        return cls(**{k: v for k, v in data.items() if k in known})
