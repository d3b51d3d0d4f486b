"""Keyed MACs (HMAC-SHA256) that bind every stored delta and facts record to its tenant, id and model.

Whoever can write the store (Redis) can write a blob and its header too, so a checksum in the blob only
catches accidents. Each delta's MAC covers its bytes, the tenant, the knowledge id, the model fingerprint and
the encode-config hash; each facts record's MAC covers the record, the tenant and the id. Without the server's
secret nobody can make one, and a delta or record copied to another id or tenant no longer verifies.
"""

import hashlib
import hmac

from reckoning_core.serialization import DeltaError
from service.store.record import KnowledgeRecord

_DELTA = b"reckoning-delta-mac/1"
_RECORD = b"reckoning-record-mac/1"


class ForgedDelta(DeltaError):
    """A stored delta whose MAC does not verify: never applied, re-encoded from the (signed) facts."""


class ForgedRecord(Exception):
    """A stored facts record that fails its MAC or does not belong to the id it is stored under."""

    def __init__(self, knowledge_id: str, why: str) -> None:
        super().__init__(f"the stored record of knowledge set {knowledge_id} fails its integrity check ({why})")
        self.knowledge_id = knowledge_id
        self.why = why


def _framed(mac: "hmac.HMAC", *parts: bytes | str) -> None:
    # Length-prefixed, so no two different part lists feed the MAC the same bytes.
    for part in parts:
        raw = part.encode("utf-8") if isinstance(part, str) else part
        mac.update(len(raw).to_bytes(8, "big"))
        mac.update(raw)


class Signer:
    """Makes and checks the MACs of one server secret."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the MAC secret must be at least 16 bytes")
        self._key = hashlib.sha256(b"reckoning-mac-key/1" + secret).digest()

    def delta_mac(self, namespace: str, knowledge_id: str, fingerprint: str, encode_hash: str, blob: bytes) -> str:
        mac = hmac.new(self._key, digestmod=hashlib.sha256)
        _framed(mac, _DELTA, namespace, knowledge_id, fingerprint, encode_hash, blob)
        return mac.hexdigest()

    def check_delta(
        self, namespace: str, knowledge_id: str, fingerprint: str, encode_hash: str, blob: bytes, mac: str
    ) -> None:
        """Raise ForgedDelta unless `mac` is this server's MAC of exactly this blob for this tenant, id and model."""
        expected = self.delta_mac(namespace, knowledge_id, fingerprint, encode_hash, blob)
        if not hmac.compare_digest(expected, mac):
            raise ForgedDelta("delta MAC does not verify (not written by this service for this tenant, id and model)")

    def record_mac(self, namespace: str, record: KnowledgeRecord) -> str:
        mac = hmac.new(self._key, digestmod=hashlib.sha256)
        _framed(mac, _RECORD, namespace, record.knowledge_id, record.unsigned_json())
        return mac.hexdigest()

    def sign_record(self, namespace: str, record: KnowledgeRecord) -> KnowledgeRecord:
        return record.signed(self.record_mac(namespace, record))

    def check_record(self, namespace: str, knowledge_id: str, record: KnowledgeRecord) -> None:
        """Raise ForgedRecord unless the record is stored under its own id and carries this server's MAC of it."""
        if record.knowledge_id != knowledge_id:
            raise ForgedRecord(knowledge_id, "it holds another knowledge set's record")
        if not record.mac:
            raise ForgedRecord(knowledge_id, "it carries no MAC")
        if not hmac.compare_digest(self.record_mac(namespace, record), record.mac):
            raise ForgedRecord(knowledge_id, "its MAC does not verify")
