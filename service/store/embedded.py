"""EmbeddedStore: facts in SQLite (stdlib), deltas in an in-memory DeltaLRU; no server needed."""

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from service.store.lru import DeltaLRU
from service.store.protocol import (
    DeltaStatus,
    EvictionHook,
    Quota,
    StoredDelta,
    StoreUnavailable,
    Usage,
    check_quota,
)
from service.store.record import KnowledgeRecord

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS knowledge (
    namespace    TEXT NOT NULL,
    knowledge_id TEXT NOT NULL,
    record       TEXT NOT NULL,
    PRIMARY KEY (namespace, knowledge_id)
)
"""
# Per-tenant totals, kept in the same transaction as every insert and delete (the quota reads them).
_USAGE = """
CREATE TABLE usage (
    namespace TEXT PRIMARY KEY,
    sets      INTEGER NOT NULL,
    bytes     INTEGER NOT NULL
)
"""
_RECORD_BYTES = "LENGTH(CAST(record AS BLOB))"


class EmbeddedStore:
    """SQLite for facts and metadata, an in-memory DeltaLRU for deltas."""

    kind = "embedded"

    def __init__(self, path: Path, *, max_delta_bytes: int, on_evict: EvictionHook | None = None) -> None:
        self.path = Path(path)
        self.deltas = DeltaLRU(max_delta_bytes, on_evict)
        # One thread owns the connection: sqlite3 objects are not meant to hop threads,
        # and file I/O must stay off the event loop.
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="reckoning-sqlite")
        self._db: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, isolation_level=None)  # autocommit: each write is durable
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute(_SCHEMA)
            if not db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'usage'").fetchall():
                # A database from before quotas: count what it already holds.
                with _transaction(db):
                    db.execute(_USAGE)
                    db.execute(
                        f"INSERT INTO usage SELECT namespace, COUNT(*), SUM({_RECORD_BYTES}) FROM knowledge "
                        "GROUP BY namespace"
                    )
            self._db = db
        return self._db

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        def run() -> T:
            try:
                return work(self._connect())
            except sqlite3.OperationalError as exc:  # disk full, locked, unreadable file
                raise StoreUnavailable(f"sqlite: {exc}") from exc

        return await asyncio.get_running_loop().run_in_executor(self._io, run)

    async def _sql(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return await self._run(lambda db: db.execute(query, params).fetchall())

    async def ping(self) -> None:
        await self._sql("SELECT 1")

    async def get_knowledge(self, namespace: str, knowledge_id: str) -> KnowledgeRecord | None:
        rows = await self._sql(
            "SELECT record FROM knowledge WHERE namespace = ? AND knowledge_id = ?", (namespace, knowledge_id)
        )
        return KnowledgeRecord.from_json(rows[0][0]) if rows else None

    async def put_knowledge(self, namespace: str, record: KnowledgeRecord, quota: Quota | None = None) -> bool:
        raw = record.to_json()
        nbytes = len(raw.encode("utf-8"))

        def insert(db: sqlite3.Connection) -> bool:
            with _transaction(db):
                exists = db.execute(
                    "SELECT 1 FROM knowledge WHERE namespace = ? AND knowledge_id = ?",
                    (namespace, record.knowledge_id),
                ).fetchall()
                if exists:
                    return False
                check_quota(quota, _usage(db, namespace), nbytes)
                db.execute(
                    "INSERT INTO knowledge (namespace, knowledge_id, record) VALUES (?, ?, ?)",
                    (namespace, record.knowledge_id, raw),
                )
                db.execute(
                    "INSERT INTO usage (namespace, sets, bytes) VALUES (?, 1, ?) "
                    "ON CONFLICT (namespace) DO UPDATE SET sets = sets + 1, bytes = bytes + excluded.bytes",
                    (namespace, nbytes),
                )
                return True

        return await self._run(insert)

    async def delete_knowledge(self, namespace: str, knowledge_id: str) -> bool:
        self.deltas.discard((namespace, knowledge_id))

        def delete(db: sqlite3.Connection) -> bool:
            with _transaction(db):
                rows = db.execute(
                    f"SELECT {_RECORD_BYTES} FROM knowledge WHERE namespace = ? AND knowledge_id = ?",
                    (namespace, knowledge_id),
                ).fetchall()
                if not rows:
                    return False
                db.execute("DELETE FROM knowledge WHERE namespace = ? AND knowledge_id = ?", (namespace, knowledge_id))
                db.execute(
                    "UPDATE usage SET sets = MAX(sets - 1, 0), bytes = MAX(bytes - ?, 0) WHERE namespace = ?",
                    (int(rows[0][0]), namespace),
                )
                return True

        return await self._run(delete)

    async def usage(self, namespace: str) -> Usage:
        return await self._run(lambda db: _usage(db, namespace))

    async def get_delta(self, namespace: str, knowledge_id: str) -> StoredDelta | None:
        return self.deltas.get((namespace, knowledge_id))

    async def delta_mac(self, namespace: str, knowledge_id: str) -> str | None:
        delta = self.deltas.get((namespace, knowledge_id))
        return None if delta is None else delta.mac

    async def knowledge_and_delta_mac(
        self, namespace: str, knowledge_id: str
    ) -> tuple[KnowledgeRecord | None, str | None]:
        return await self.get_knowledge(namespace, knowledge_id), await self.delta_mac(namespace, knowledge_id)

    async def put_delta(self, namespace: str, knowledge_id: str, delta: StoredDelta, ttl_s: int) -> None:
        self.deltas.put((namespace, knowledge_id), delta, ttl_s)

    async def delta_status(self, namespace: str, knowledge_id: str) -> DeltaStatus:
        ttl = self.deltas.ttl((namespace, knowledge_id))
        return DeltaStatus(cached=False) if ttl is None else DeltaStatus(cached=True, ttl_s=ttl)

    async def touch_delta(self, namespace: str, knowledge_id: str, ttl_s: int) -> bool:
        return self.deltas.touch((namespace, knowledge_id), ttl_s)

    async def delete_delta(self, namespace: str, knowledge_id: str) -> None:
        self.deltas.discard((namespace, knowledge_id))

    @contextlib.asynccontextmanager
    async def flight_lock(self, namespace: str, knowledge_id: str) -> AsyncIterator[None]:
        yield  # one process owns this store: the in-process single-flight is the whole story

    async def close(self) -> None:
        def shut() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        await asyncio.get_running_loop().run_in_executor(self._io, shut)
        self._io.shutdown(wait=True)


def _usage(db: sqlite3.Connection, namespace: str) -> Usage:
    rows = db.execute("SELECT sets, bytes FROM usage WHERE namespace = ?", (namespace,)).fetchall()
    return Usage(int(rows[0][0]), int(rows[0][1])) if rows else Usage()


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection) -> Any:
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
