"""What a run prints and records: a progress bar with running loss/accuracy, and one JSON line per logged step."""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Any

from tqdm import tqdm


class TrainLog:
    """Rank 0 writes; other ranks get an inert log (no bar, no file)."""

    def __init__(self, out: Path, start: int, total: int, active: bool, window: int = 50) -> None:
        self.active = active
        self.file: IO[str] | None = open(out / "log.jsonl", "a") if active else None  # noqa: SIM115
        self.bar = tqdm(total=total, initial=start, disable=not active, dynamic_ncols=True, mininterval=5)
        self.window: list[tuple[float, int, int]] = []
        self.size = window

    def step(self, loss: float, correct: int, n: int, best: float) -> None:
        self.bar.update(1)
        self.window = [*self.window, (loss, correct, n)][-self.size :]
        if self.active:
            w_loss = sum(x[0] for x in self.window) / len(self.window)
            w_acc = sum(x[1] for x in self.window) / max(1, sum(x[2] for x in self.window))
            self.bar.set_postfix(loss=f"{w_loss:.3f}", acc=f"{w_acc:.3f}", best=f"{best:.3f}")

    def write(self, record: dict[str, Any], echo: bool = False) -> None:
        if self.file is None:
            return
        if echo:
            tqdm.write(json.dumps(record))
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()

    def close(self) -> None:
        self.bar.close()
        if self.file is not None:
            self.file.close()
