"""The bench's knowledge sets: owa_dev_natlang theories (training's reader), a typical one, and N distinct ones."""

from collections.abc import Iterator
from pathlib import Path

from training.data.episode import Episode, data_dir
from training.data.proofwriter import read_natlang

DEV_FILE = Path("proofwriter") / "owa_dev_natlang.jsonl"


def load_dev_theories(path: Path | None = None) -> list[Episode]:
    """Every theory of owa_dev_natlang.jsonl (default: under RECKONING_DATA_DIR), facts in file order."""
    path = path or data_dir() / DEV_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} not found; set RECKONING_DATA_DIR to the shared data folder")
    theories = list(read_natlang(path))
    if not theories:
        raise ValueError(f"{path} holds no theories")
    return theories


def typical_theory(theories: list[Episode]) -> Episode:
    """The median theory by number of sentences (ties broken by id): 'a typical full theory'."""
    ordered = sorted(theories, key=lambda t: (len(t.facts), t.id))
    return ordered[len(ordered) // 2]


def distinct_sets(theories: list[Episode], n: int) -> Iterator[tuple[tuple[str, ...], Episode]]:
    """n different, realistic fact sets: every dev theory whole, then each with one sentence left
    out (sentence 0 of every theory, then sentence 1, ...), so sizes stay those of real theories."""
    seen: set[frozenset[str]] = set()
    made = 0
    max_facts = max(len(t.facts) for t in theories)
    for drop in range(-1, max_facts):
        for theory in theories:
            if drop >= len(theory.facts):
                continue
            facts = theory.facts if drop < 0 else theory.facts[:drop] + theory.facts[drop + 1 :]
            key = frozenset(" ".join(f.split()) for f in facts)
            if not facts or key in seen:
                continue
            seen.add(key)
            yield facts, theory
            made += 1
            if made >= n:
                return
    raise ValueError(f"only {made} distinct fact sets can be made from {len(theories)} theories, {n} wanted")
