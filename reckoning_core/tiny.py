"""A tiny random-init checkpoint for tests and smoke runs (seconds to build, no downloads)."""

from __future__ import annotations

from pathlib import Path

from reckoning_core.architecture import new_causal_lm
from reckoning_core.checkpoint import Checkpoint, save_checkpoint
from reckoning_core.config import EncodeConfig, FastWeightSpec, ReckoningConfig
from reckoning_core.tokenizer import train_bpe

TINY_CORPUS = [
    "Bob is blue.", "Anne is kind.", "If someone is nice and blue then they are round.",
    "Question: Bob is not big.\nAnswer: Unknown", "Answer: True", "Answer: False",
    "K is the uncle of C.", "How is K related to Z?", "Facts: Bob is blue.",
]


def build_tiny_checkpoint(path: Path, arch: str = "gpt2", labels: list[str] | None = None,
                          fast_weights: FastWeightSpec | None = None, inner_steps: int = 2,
                          seed: int = 0) -> Path:
    if labels is None:
        labels = ["True", "False", "Unknown"]
    tok = train_bpe(TINY_CORPUS * 20, vocab_size=320)
    model = new_causal_lm(tok, arch=arch, n_layer=2, d_model=32, n_head=2, n_positions=256, seed=seed)
    config = ReckoningConfig(
        encode=EncodeConfig(inner_steps=inner_steps, init_lr=0.05,
                            fast_weights=fast_weights or FastWeightSpec(mode="patterns", patterns=(r"\.mlp\.",))),
        labels=tuple(labels) if labels else None,
    )
    ckpt = Checkpoint(model, tok, config, name=Path(path).name)
    return save_checkpoint(ckpt, path)
