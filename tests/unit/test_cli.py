"""The `reckoning` dispatcher: every entry point is listed, each runs its package's function, imports stay lazy."""

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from reckoning_cli import main as cli

COMMANDS = ["serve", "encode", "ask", "train", "eval", "export", "configure", "report", "bench"]


def _help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as done:
        cli.main([*argv, "--help"])
    assert done.value.code == 0
    return capsys.readouterr().out


def test_help_lists_every_entry_point(capsys: pytest.CaptureFixture[str]) -> None:
    top = _help([], capsys)
    for command in COMMANDS:  # a long name wraps its help to the next line
        assert f"    {command} " in top or f"    {command}\n" in top, command
    bench = _help(["bench"], capsys)
    for command in ("run", "ab", "report"):
        assert f"    {command} " in bench, command


def test_the_dispatcher_imports_no_package_until_a_command_runs() -> None:
    code = (
        "import sys, reckoning_cli.main as m; m.build_parser(); "
        "print(sorted({n.split('.')[0] for n in sys.modules} & {'service', 'training', 'benchmarks', 'torch'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_python_dash_m_is_the_same_command() -> None:
    # torchrun --nproc_per_node=2 -m reckoning_cli train ... relies on this.
    done = subprocess.run([sys.executable, "-m", "reckoning_cli", "bench", "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "run|ab|report" in done.stdout


@pytest.mark.parametrize(
    ("argv", "target", "expected"),
    [
        (["serve", "--port", "9000"], "service.cli.serve", {"host": None, "port": 9000, "model": None}),
        (["train", "--config", "c.yaml", "--set", "a=1"], "training.cli.train_cmd", {"args": ("c.yaml", ["a=1"])}),
        (["export", "runs/x", "models/x", "--command", "reckoning train"], "training.export.export",
         {"args": (Path("runs/x"), Path("models/x"), ["reckoning train"], "best", [])}),
        (["configure", "models/x", "--lr-size-ref", "64"], "reckoning_core.checkpoint.set_lr_size_ref",
         {"args": (Path("models/x"), 64)}),
        (["report", "--evaluate"], "training.report.report", {"evaluate": True, "force": False}),
        (["bench", "run", "--quick"], "benchmarks.run.bench_cmd", {"quick": True, "out": "results/bench.json"}),
        (["bench", "ab", "--variant", "a:RECKONING_X=1", "--variant", "b:RECKONING_X=2", "--out", "o.json"],
         "benchmarks.ab.ab_cmd", {"args": (["a:RECKONING_X=1", "b:RECKONING_X=2"],), "ids": 150}),
        (["bench", "report", "r.json"], "benchmarks.report.report_cmd", {"args": ("r.json",), "md": None}),
    ],
)
def test_each_command_calls_its_packages_function(
    argv: list[str], target: str, expected: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    monkeypatch.setattr(target, lambda *a, **k: calls.append((a, k)))
    with pytest.raises(SystemExit) as done:
        cli.main(argv)
    assert done.value.code == 0
    [(args, kwargs)] = calls
    assert args == expected.pop("args", ())
    assert expected.items() <= kwargs.items()


def test_a_missing_extra_names_the_module_and_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(*_: Any, **__: Any) -> None:
        raise ModuleNotFoundError("No module named 'matplotlib'", name="matplotlib")

    monkeypatch.setattr("benchmarks.report.report_cmd", missing)
    with pytest.raises(SystemExit) as done:
        cli.main(["bench", "report"])
    assert "cannot import matplotlib" in str(done.value.code) and "bench extra" in str(done.value.code)
