"""Research: bytes per knowledge set against dev accuracy for each fast-weight selection and storage dtype."""

import statistics
import time
from dataclasses import dataclass, replace
from typing import Any

from reckoning_core.checkpoint import Checkpoint
from reckoning_core.compression import kept_energy, low_rank
from reckoning_core.config import FastWeightSpec
from reckoning_core.fast_weights import adapted_names, init_fast, make_lora_init
from reckoning_core.inner_loop import init_log_lrs
from reckoning_core.reckoner import Reckoner
from reckoning_core.serialization import DEFAULT_DELTA_DTYPE
from training.data.episode import Episode

_SHORT = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}
_MLP = (r"\.mlp\.",)


@dataclass(frozen=True)
class Selection:
    spec: FastWeightSpec
    dtypes: tuple[str, ...]
    reckoner: Reckoner
    trained: bool  # the selection the checkpoint was meta-trained for
    lr_source: str


def describe(spec: FastWeightSpec) -> str:
    pats = ",".join(spec.patterns)
    if spec.mode == "all":
        return "all weights"
    if spec.mode == "lora":
        return f"LoRA r{spec.rank} on {pats}"
    return f"dense {pats}"


def spec_json(spec: FastWeightSpec) -> dict[str, Any]:
    return {"mode": spec.mode, "patterns": list(spec.patterns) if spec.mode != "all" else [],
            "rank": spec.rank if spec.mode == "lora" else None}


def reckoner_for(base: Reckoner, spec: FastWeightSpec) -> tuple[Reckoner, str]:
    """A Reckoner over the same weights adapting `spec`. Only the checkpoint's own selection was
    meta-trained; elsewhere every tensor the checkpoint has a learned LR schedule for (same name,
    same number of steps) keeps it and the rest start from the checkpoint's init_lr."""
    enc = base.config.encode
    if spec == enc.fast_weights:
        return base, "learned (the selection this checkpoint was meta-trained for)"
    config = replace(base.config, encode=replace(enc, fast_weights=spec))
    model = base.model
    lora_init = make_lora_init(model, spec) if spec.mode == "lora" else {}
    fast = init_fast(model, spec, lora_init)
    fallback = init_log_lrs(fast, config.encode)
    learned = {n: v.detach().cpu() for n, v in base.log_lrs.items()}
    log_lrs = {n: learned[n] if n in learned and learned[n].shape == fallback[n].shape else fallback[n] for n in fast}
    n_learned = sum(1 for n in fast if n in learned and learned[n].shape == fallback[n].shape)
    ckpt = Checkpoint(model, base.tokenizer, config, log_lrs, lora_init, name=base.model_name)
    if n_learned == len(fast):
        source = f"learned schedule for all {len(fast)} tensors (a subset of the trained selection)"
    elif n_learned:
        source = f"learned schedule for {n_learned} of {len(fast)} tensors, init_lr {enc.init_lr:g} for the rest"
    else:
        source = f"init_lr {enc.init_lr:g} for every step and tensor (no learned LR fits this selection)"
    return Reckoner(ckpt, base.device), source


def _n_layers(base: Reckoner) -> int | None:
    cfg = getattr(base.model, "config", None)
    n = getattr(cfg, "num_hidden_layers", None) or getattr(cfg, "n_layer", None)
    return int(n) if n else None


def candidate_specs(base: Reckoner, lora_ranks: tuple[int, ...]) -> list[tuple[FastWeightSpec, tuple[str, ...]]]:
    default = base.config.encode.fast_weights
    out: list[tuple[FastWeightSpec, tuple[str, ...]]] = [(default, ("float32", "float16", "bfloat16"))]
    wanted = [FastWeightSpec(mode="all"), FastWeightSpec(mode="patterns", patterns=_MLP)]
    layers = _n_layers(base)
    if layers:
        # the top layer's MLP alone: the smallest dense subset that keeps learned LRs
        wanted.append(FastWeightSpec(mode="patterns", patterns=(rf"\.{layers - 1}\.mlp\.",)))
    lora_patterns = default.patterns if default.mode != "all" else _MLP
    wanted += [FastWeightSpec(mode="lora", patterns=lora_patterns, rank=r) for r in lora_ranks]
    for spec in wanted:
        if spec == default or any(spec == s for s, _ in out):
            continue
        try:
            adapted_names(base.model, spec)
        except ValueError:
            continue  # this architecture has no such parameters
        out.append((spec, ("float32", "float16")))
    return out


def delta_options(base: Reckoner, theories: list[Episode], *, n_theories: int, lora_ranks: tuple[int, ...],
                  svd_ranks: tuple[int, ...], default_dtype: str = DEFAULT_DELTA_DTYPE,
                  default_rank: int = 0) -> dict[str, Any]:
    """Accuracy on the first `n_theories` dev theories (full theory, every question), each
    stored delta serialised at its dtype, loaded back and applied, as the service would.

    Drops and agreement are against the exact inner-loop result (the trained selection, dense fp32);
    `default_dtype` / `default_rank` name the service's stored form, flagged `service_default`."""
    slice_ = theories[:n_theories]
    ranks = sorted({*svd_ranks, *([default_rank] if default_rank else [])})
    selections = []
    for spec, dtypes in candidate_specs(base, lora_ranks):
        reckoner, source = reckoner_for(base, spec)
        selections.append(Selection(spec, dtypes, reckoner, reckoner is base, source))
    keys = [(i, d) for i in range(len(selections)) for d in selections[i].dtypes]
    answers: dict[tuple[int, str], list[str]] = {k: [] for k in keys}
    sizes: dict[tuple[int, str], list[int]] = {k: [] for k in keys}
    tensor_bytes: dict[int, int] = {}
    encode_ms: dict[int, list[float]] = {i: [] for i in range(len(selections))}
    # the default selection's delta, SVD-compressed to rank r after the inner loop and stored in fp16
    svd_answers: dict[int, list[str]] = {r: [] for r in ranks}
    svd_sizes: dict[int, list[int]] = {r: [] for r in ranks}
    svd_energy: dict[int, list[float]] = {r: [] for r in ranks}
    svd_ms: dict[int, list[float]] = {r: [] for r in ranks}
    gold: list[str] = []
    no_knowledge: list[str] = []
    for theory in slice_:
        texts = [q.text for q in theory.questions]
        gold += [q.answer for q in theory.questions]
        no_knowledge += [a.answer for a in base.answer(texts, None)]
        for i, sel in enumerate(selections):
            started = time.perf_counter()
            delta = sel.reckoner.encode(list(theory.facts), with_recall=False).delta
            encode_ms[i].append((time.perf_counter() - started) * 1e3)
            tensor_bytes[i] = sum(t.numel() * t.element_size() for t in delta.values())
            for dtype in sel.dtypes:
                blob = sel.reckoner.serialize_delta(delta, dtype)
                sizes[(i, dtype)].append(len(blob))
                loaded = sel.reckoner.deserialize_delta(blob)
                answers[(i, dtype)] += [a.answer for a in sel.reckoner.answer(texts, loaded)]
            if i == 0:
                for r in ranks:
                    started = time.perf_counter()
                    compressed = low_rank(delta, r)
                    svd_ms[r].append((time.perf_counter() - started) * 1e3)
                    svd_energy[r].append(kept_energy(delta, r))
                    blob = sel.reckoner.serialize_delta(compressed, "float16")
                    svd_sizes[r].append(len(blob))
                    loaded = sel.reckoner.deserialize_delta(blob)
                    svd_answers[r] += [a.answer for a in sel.reckoner.answer(texts, loaded)]

    def acc(pred: list[str]) -> float:
        return sum(p == g for p, g in zip(pred, gold, strict=True)) / len(gold)

    reference = answers[(0, "float32")]
    ref_acc = acc(reference)

    def scored(pred: list[str]) -> dict[str, float]:
        a = acc(pred)
        same = sum(p == r for p, r in zip(pred, reference, strict=True)) / len(gold)
        return {"accuracy": round(a, 4), "accuracy_drop_pts": round((ref_acc - a) * 100, 2),
                "agreement_with_exact": round(same, 4)}

    options = []
    for i, dtype in keys:
        sel = selections[i]
        options.append({
            "name": f"{describe(sel.spec)} {_SHORT[dtype]}",
            "selection": spec_json(sel.spec),
            "storage_dtype": dtype,
            "bytes": int(statistics.median(sizes[(i, dtype)])),
            "tensor_bytes_fp32": tensor_bytes[i],
            **scored(answers[(i, dtype)]),
            "trained_selection": sel.trained,
            "lr_source": sel.lr_source,
            "encode_ms": round(statistics.median(encode_ms[i]), 3),
        })
    for r in ranks:
        options.append({
            "name": f"{describe(selections[0].spec)}, SVD rank {r} fp16",
            "selection": spec_json(selections[0].spec),
            "storage_dtype": "float16",
            "svd_rank": r,
            "bytes": int(statistics.median(svd_sizes[r])),
            "tensor_bytes_fp32": tensor_bytes[0],
            **scored(svd_answers[r]),
            "trained_selection": True,
            "lr_source": "learned; the delta is compressed after the inner loop (RECKONING_DELTA_RANK)",
            "encode_ms": round(statistics.median(encode_ms[0]) + statistics.median(svd_ms[r]), 3),
            "kept_energy": round(statistics.mean(svd_energy[r]), 4),
        })
    exact = options[0]["name"]
    default = (f"{describe(selections[0].spec)}, SVD rank {default_rank} fp16" if default_rank
               else f"{describe(selections[0].spec)} {_SHORT[default_dtype]}")
    if default_rank and default_dtype != "float16":
        default = default.replace(" fp16", f" {_SHORT[default_dtype]}")
    for o in options:
        o["service_default"] = o["name"] == default
    return {
        "exact": exact,
        "default": default,
        "slice": f"first {len(slice_)} theories of owa_dev_natlang.jsonl, full theory, every question",
        "n_theories": len(slice_),
        "n_questions": len(gold),
        "no_knowledge_accuracy": round(acc(no_knowledge), 4),
        "majority_label_accuracy": round(max(gold.count(lbl) for lbl in set(gold)) / len(gold), 4),
        "options": options,
    }
