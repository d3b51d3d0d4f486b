"""Training and the CLI resolve RECKONING_DEVICE like the service: auto -> CUDA when there is one, else cpu."""

import pytest
import torch

from reckoning_cli.main import build_parser
from training.config import TrainConfig


def test_train_config_resolves_auto(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RECKONING_DEVICE", raising=False)
    assert TrainConfig().device == ("cuda" if torch.cuda.is_available() else "cpu")
    monkeypatch.setenv("RECKONING_DEVICE", "meta")
    assert TrainConfig().device == "meta"  # the environment fills in "auto"
    assert TrainConfig(device="cpu").device == "cpu"  # an explicit config value wins
    assert TrainConfig.load(None, ["device=cpu"]).device == "cpu"
    with pytest.raises(ValueError):
        TrainConfig(device="tpu-ish")


def test_cli_takes_a_device() -> None:
    parser = build_parser()
    assert parser.parse_args(["eval", "--device", "cpu"]).device == "cpu"
    assert parser.parse_args(["bench", "run", "--device", "cpu"]).device == "cpu"
    assert parser.parse_args(["bench", "run"]).device is None


def test_eval_stays_float32_unless_asked() -> None:
    parser = build_parser()
    assert parser.parse_args(["eval"]).inner_autocast == "off"
    assert parser.parse_args(["eval", "--inner-autocast", "bf16"]).inner_autocast == "bf16"
    assert parser.parse_args(["eval", "--inner-autocast", "auto"]).inner_autocast == "auto"
    with pytest.raises(SystemExit):
        parser.parse_args(["eval", "--inner-autocast", "int8"])
