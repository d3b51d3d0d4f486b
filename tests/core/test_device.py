"""Device plumbing: RECKONING_DEVICE resolution, and every tensor an encode or an answer makes follows the device."""

from pathlib import Path

import pytest
import torch

from reckoning_core.answer import score_choices
from reckoning_core.checkpoint import load_checkpoint
from reckoning_core.device import cpu_flags, device_setting, inner_autocast, resolve_autocast, resolve_device
from reckoning_core.fast_weights import init_fast, merge
from reckoning_core.inner_loop import adapt
from reckoning_core.reckoner import Reckoner
from tests.support import FloatDevices

FACTS = ["Bob is blue.", "Anne is kind.", "If someone is nice and blue then they are round."]


def test_resolve_device(monkeypatch: pytest.MonkeyPatch) -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto") == resolve_device(None) == resolve_device("") == expected
    assert resolve_device("cpu") == "cpu" and resolve_device("meta") == "meta"
    with pytest.raises(ValueError):
        resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA"):
            resolve_device("cuda")
    monkeypatch.delenv("RECKONING_DEVICE", raising=False)
    assert device_setting() == "auto" and device_setting("cpu") == "cpu"
    monkeypatch.setenv("RECKONING_DEVICE", "meta")
    assert device_setting() == "meta" and device_setting("cpu") == "cpu"


def test_auto_loads_on_the_resolved_device(tiny_gpt2: Path) -> None:
    r = Reckoner.from_pretrained(tiny_gpt2, device="auto")
    assert r.device == resolve_device("auto")
    assert {p.device.type for p in r.model.parameters()} == {torch.device(r.device).type}


def test_every_tensor_an_encode_and_answer_make_is_on_the_meta_device(tiny_gpt2: Path) -> None:
    """On torch's meta device a tensor left on the CPU meets a meta tensor and fails, and the recorder
    sees every float tensor an op makes: so this proves the plumbing a CUDA device would take."""
    r = Reckoner(load_checkpoint(tiny_gpt2), device="meta")
    assert {p.device.type for p in r.model.parameters()} == {"meta"}
    labels = list(r.labels or [])
    enc = r.config.encode
    with FloatDevices(kind_only=True) as seen:
        # Reckoner.encode's own steps (it ends by reading the final loss as a float, which meta cannot give)
        _, batch = r._fact_batch(FACTS)
        delta = adapt(r.model, r.base, init_fast(r.model, enc.fast_weights), batch, r.log_lrs, enc).fast
        params = merge(r.base, delta)
        prompts = [r.config.prompt.question_prompt("Bob is round.")]
        probs = score_choices(r.model, params, r.tokenizer, prompts, labels)
    assert seen.devices == {"meta"}, seen.devices
    assert {t.device.type for t in delta.values()} == {"meta"}
    assert probs.device.type == "meta"
    # Left out: the prefix cache (transformers' cache path reads a tensor's value, which meta cannot give) and
    # the batched encode (functorch's grad transform refuses a meta forward); tests/core/test_cuda.py runs both.


def test_inner_autocast_keeps_fp32_fast_weights(tiny_gpt2: Path) -> None:
    exact = Reckoner.from_pretrained(tiny_gpt2, device="cpu").encode(FACTS, with_recall=False).delta
    mixed = Reckoner.from_pretrained(tiny_gpt2, device="cpu", inner_autocast="bf16").encode(FACTS, with_recall=False)
    for name, d in mixed.delta.items():
        assert d.dtype == torch.float32
        torch.testing.assert_close(d, exact[name], atol=5e-3, rtol=0.1)
    with inner_autocast("cpu", "off"):
        assert not torch.is_autocast_enabled("cpu")
    with pytest.raises(ValueError):
        Reckoner.from_pretrained(tiny_gpt2, device="cpu", inner_autocast="int8")  # type: ignore[arg-type]


def test_adaptive_stop(tiny_gpt2: Path) -> None:
    r = Reckoner.from_pretrained(tiny_gpt2, device="cpu")
    full = r.encode(FACTS, with_recall=False)
    assert full.steps == r.config.encode.inner_steps
    never = r.encode(FACTS, with_recall=False, stop_below=0.0)
    assert never.steps == full.steps
    for name in full.delta:
        torch.testing.assert_close(never.delta[name], full.delta[name])
    at_once = r.encode(FACTS, with_recall=False, stop_below=1e9)
    assert at_once.steps == 0 and all(float(d.abs().max()) == 0.0 for d in at_once.delta.values())


CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Some Xeon
flags\t\t: fpu vme sse sse2 avx avx2 avx512f avx512bw {extra}
bugs\t\t: spectre_v1

processor\t: 1
flags\t\t: fpu vme sse sse2 avx avx2 avx512f avx512bw {extra}
"""


@pytest.mark.parametrize(("extra", "native"), [
    ("avx512_bf16", True), ("amx_bf16 amx_tile", True), ("avx512_bf16 amx_bf16 amx_int8", True),
    ("", False), ("avx512_vnni avx512_fp16 amx_int8", False),
])
def test_auto_inner_autocast_on_a_cpu_follows_its_bf16_flags(tmp_path: Path, extra: str, native: bool) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(CPUINFO.format(extra=extra))
    assert ("avx512_bf16" in cpu_flags(cpuinfo)) == ("avx512_bf16" in extra.split())
    assert resolve_autocast("auto", "cpu", cpuinfo) == ("bf16" if native else "off")


def test_auto_inner_autocast_elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    native = tmp_path / "cpuinfo"
    native.write_text(CPUINFO.format(extra="avx512_bf16 amx_bf16"))
    assert resolve_autocast("auto", "cpu", tmp_path / "absent") == "off"  # no /proc/cpuinfo: nothing assumed
    assert resolve_autocast("auto", "meta", native) == "off"  # a CPU's flags say nothing about another device
    for supported, expected in ((True, "bf16"), (False, "fp16")):
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda supported=supported: supported)
        assert resolve_autocast("auto", "cuda", tmp_path / "absent") == expected
    # explicit modes are taken as they are, whatever the machine; anything else is refused
    for mode in ("off", "bf16", "fp16"):
        assert resolve_autocast(mode, "cpu", tmp_path / "absent") == mode
    with pytest.raises(ValueError, match="inner autocast"):
        resolve_autocast("int8", "cpu", native)


def test_a_reckoner_stays_float32_unless_asked(tiny_gpt2: Path) -> None:
    assert Reckoner.from_pretrained(tiny_gpt2, device="cpu").inner_autocast == "off"
    auto = Reckoner.from_pretrained(tiny_gpt2, device="cpu", inner_autocast="auto")
    assert auto.inner_autocast == resolve_autocast("auto", "cpu")
