"""Knowledge ids: facts normalised into a set, then content-addressed with the model and encode config."""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata

_WS = re.compile(r"\s+")


def normalize_fact(fact: str) -> str:
    return _WS.sub(" ", unicodedata.normalize("NFC", fact)).strip()


def normalize_facts(facts: list[str]) -> list[str]:
    """NFC, whitespace collapsed, empties and duplicates dropped, order-insensitive (sorted)."""
    return sorted({f for f in map(normalize_fact, facts) if f})


def knowledge_id(fingerprint: str, encode_config_hash: str, facts: list[str]) -> str:
    norm = normalize_facts(facts)
    if not norm:
        raise ValueError("a knowledge set needs at least one non-empty fact")
    payload = json.dumps({"model": fingerprint, "encode": encode_config_hash, "facts": norm},
                         ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()
