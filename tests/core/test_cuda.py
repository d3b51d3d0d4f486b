"""CUDA path (skipped without a GPU): encode and answer on the GPU, bf16 autocast close to fp32, prefix cache."""

from pathlib import Path

import pytest
import torch

from reckoning_core.reckoner import Reckoner

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

FACTS = ["Bob is blue.", "Anne is kind.", "If someone is nice and blue then they are round."]
QUESTIONS = ["Bob is round.", "Anne is not kind."]


def test_cuda_encode_and_answer_match_cpu(tiny_gpt2: Path) -> None:
    cpu = Reckoner.from_pretrained(tiny_gpt2, device="cpu")
    gpu = Reckoner.from_pretrained(tiny_gpt2, device="auto")
    assert gpu.device.startswith("cuda")
    d_cpu = cpu.encode(FACTS, with_recall=False).delta
    d_gpu = gpu.encode(FACTS, with_recall=False).delta
    for name, d in d_gpu.items():
        assert d.is_cuda
        torch.testing.assert_close(d.cpu(), d_cpu[name], atol=1e-4, rtol=1e-3)
    a_cpu = cpu.answer(QUESTIONS, cpu.merged(d_cpu))
    a_gpu = gpu.answer(QUESTIONS, gpu.merged(d_gpu))
    assert [a.answer for a in a_gpu] == [a.answer for a in a_cpu]


def test_cuda_bf16_inner_loop_close_to_fp32(tiny_gpt2: Path) -> None:
    exact = Reckoner.from_pretrained(tiny_gpt2, device="cuda").encode(FACTS, with_recall=False).delta
    mixed = Reckoner.from_pretrained(tiny_gpt2, device="cuda", inner_autocast="bf16").encode(FACTS, with_recall=False)
    for name, d in mixed.delta.items():
        assert d.dtype == torch.float32 and d.is_cuda
        torch.testing.assert_close(d, exact[name], atol=5e-3, rtol=0.1)


def test_cuda_batched_encode_and_prefix_cache(tiny_gpt2: Path) -> None:
    r = Reckoner.from_pretrained(tiny_gpt2, device="cuda")
    for facts, delta in zip([FACTS, FACTS[:1]], r.encode_many([FACTS, FACTS[:1]]), strict=True):
        single = r.encode(facts, with_recall=False).delta
        for name, d in delta.items():
            torch.testing.assert_close(d, single[name], atol=1e-5, rtol=1e-3)
    cached = r.answer_from_context(r.prefill_context(FACTS), FACTS, QUESTIONS)
    assert [a.answer for a in cached] == [a.answer for a in r.answer_in_context(FACTS, QUESTIONS)]
