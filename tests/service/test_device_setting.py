"""RECKONING_DEVICE reaches the engine: the model loads there, and every tensor a request makes lands there."""

from pathlib import Path

import pytest

from reckoning_core.device import DEFAULT_INNER_AUTOCAST, resolve_autocast, resolve_device
from service.engine import Engine
from service.settings import Settings
from tests.support import FloatDevices


def test_settings_read_the_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RECKONING_INNER_AUTOCAST", raising=False)
    assert Settings().device == "auto" and Settings().inner_autocast == DEFAULT_INNER_AUTOCAST == "auto"
    monkeypatch.setenv("RECKONING_DEVICE", "cpu")
    monkeypatch.setenv("RECKONING_INNER_AUTOCAST", "bf16")
    assert Settings().device == "cpu" and Settings().inner_autocast == "bf16"


def test_engine_loads_on_the_setting_and_requests_stay_there(tiny_checkpoint: Path) -> None:
    engine = Engine.load(tiny_checkpoint, torch_threads=1, device="auto")
    device = resolve_device("auto")
    assert engine.reckoner.device == device
    assert {str(p.device) for p in engine.reckoner.model.parameters()} == {device}

    try:
        # the engine's own request steps, on this thread (a dispatch mode sees only the thread it was entered on)
        with FloatDevices() as seen:
            encoded = engine._encode_sync(["The dog is red.", "If something is red then it is big."])
            weights = engine._load_weights_sync(encoded.blob, None)
            engine.reckoner.answer(["The dog is big."], weights, None, 4)  # what Engine.answer runs per chunk
    finally:
        engine.close()
    assert seen.devices == {device}, seen.devices


def test_engine_refuses_an_unknown_device(tiny_checkpoint: Path) -> None:
    with pytest.raises(ValueError, match="unknown device"):
        Engine.load(tiny_checkpoint, torch_threads=1, device="gpu-please")


def test_the_engine_resolves_the_default_inner_autocast_for_its_device(tiny_checkpoint: Path) -> None:
    """The service's default is "auto", resolved once at load (bf16 on this CPU where it has avx512_bf16/amx_bf16)."""
    engine = Engine.load(tiny_checkpoint, torch_threads=1, device="cpu")
    try:
        assert engine.reckoner.inner_autocast == resolve_autocast("auto", "cpu")
    finally:
        engine.close()
    engine = Engine.load(tiny_checkpoint, torch_threads=1, device="cpu", inner_autocast="off")
    try:
        assert engine.reckoner.inner_autocast == "off"
    finally:
        engine.close()
