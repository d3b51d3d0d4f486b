"""EmbeddedStore: facts in SQLite (stdlib), deltas in an in-memory DeltaLRU; no server needed."""

import asyncio
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from service.store.lru import DeltaLRU
from service.store.protocol import DeltaStatus, EvictionHook, StoreUnavailable
from service.store.record import KnowledgeRecord

_SCHEMA = """
CREATE TABLE IF NOT EXISTS knowledge (
    namespace    TEXT NOT NULL,
    knowledge_id TEXT NOT NULL,
    record       TEXT NOT NULL,
    PRIMARY KEY (namespace, knowledge_id)
)
"""


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
            self._db = db
        return self._db

    async def _sql(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]] | int:
        def run() -> list[tuple[Any, ...]] | int:
            try:
                cur = self._connect().execute(query, params)
                return cur.fetchall() if query.lstrip().upper().startswith("SELECT") else cur.rowcount
            except sqlite3.OperationalError as exc:  # disk full, locked, unreadable file
                raise StoreUnavailable(f"sqlite: {exc}") from exc

        return await asyncio.get_running_loop().run_in_executor(self._io, run)

    async def ping(self) -> None:
        await self._sql("SELECT 1")

    async def get_knowledge(self, namespace: str, knowledge_id: str) -> KnowledgeRecord | None:
        rows = await self._sql(
            "SELECT record FROM knowledge WHERE namespace = ? AND knowledge_id = ?", (namespace, knowledge_id)
        )
        assert isinstance(rows, list)
        return KnowledgeRecord.from_json(rows[0][0]) if rows else None

    async def put_knowledge(self, namespace: str, record: KnowledgeRecord) -> bool:
        changed = await self._sql(
            "INSERT OR IGNORE INTO knowledge (namespace, knowledge_id, record) VALUES (?, ?, ?)",
            (namespace, record.knowledge_id, record.to_json()),
        )
        return changed == 1

    async def delete_knowledge(self, namespace: str, knowledge_id: str) -> bool:
        self.deltas.discard((namespace, knowledge_id))
        changed = await self._sql(
            "DELETE FROM knowledge WHERE namespace = ? AND knowledge_id = ?", (namespace, knowledge_id)
        )
        return changed == 1

    async def get_delta(self, namespace: str, knowledge_id: str) -> bytes | None:
        return self.deltas.get((namespace, knowledge_id))

    async def put_delta(self, namespace: str, knowledge_id: str, blob: bytes, ttl_s: int) -> None:
        self.deltas.put((namespace, knowledge_id), blob, ttl_s)

    async def delta_status(self, namespace: str, knowledge_id: str) -> DeltaStatus:
        ttl = self.deltas.ttl((namespace, knowledge_id))
        return DeltaStatus(cached=False) if ttl is None else DeltaStatus(cached=True, ttl_s=ttl)

    async def touch_delta(self, namespace: str, knowledge_id: str, ttl_s: int) -> bool:
        return self.deltas.touch((namespace, knowledge_id), ttl_s)

    async def delete_delta(self, namespace: str, knowledge_id: str) -> None:
        self.deltas.discard((namespace, knowledge_id))

    async def close(self) -> None:
        def shut() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        await asyncio.get_running_loop().run_in_executor(self._io, shut)
        self._io.shutdown(wait=True)
