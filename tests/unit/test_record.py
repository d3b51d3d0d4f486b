"""KnowledgeRecord's stored JSON is versioned: old records load, added fields have defaults, others fail clearly."""

import json
from dataclasses import asdict, dataclass, field

import pytest

from service.store import KnowledgeRecord, UnreadableRecord
from service.store.record import RECORD_VERSION

RECORD = KnowledgeRecord("k" * 64, ["Bob is kind."], 1.5, "tiny", "f" * 64, 1.0, 0.25, 10, 60, 3.0)


def test_round_trip_writes_the_version() -> None:
    raw = RECORD.to_json()
    assert json.loads(raw)["version"] == RECORD_VERSION
    assert KnowledgeRecord.from_json(raw) == RECORD


def test_records_stored_before_the_version_field_still_load() -> None:
    assert KnowledgeRecord.from_json(json.dumps(asdict(RECORD))) == RECORD


def test_a_field_from_a_newer_server_is_ignored_and_a_new_field_takes_its_default() -> None:
    newer = json.dumps({**asdict(RECORD), "version": RECORD_VERSION, "tags": ["x"]})
    assert KnowledgeRecord.from_json(newer) == RECORD

    @dataclass(frozen=True)
    class WithTags(KnowledgeRecord):
        tags: list[str] = field(default_factory=list)

    assert WithTags.from_json(RECORD.to_json()).tags == []


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (json.dumps({**asdict(RECORD), "version": 2}), "version 2; this server reads version 1"),
        (json.dumps({k: v for k, v in asdict(RECORD).items() if k != "facts"}), "lacks facts"),
        (json.dumps(["not", "a", "record"]), "JSON object"),
    ],
)
def test_an_unreadable_record_is_a_clear_error(raw: str, says: str) -> None:
    with pytest.raises(UnreadableRecord, match=says):
        KnowledgeRecord.from_json(raw)
