"""`reckoning export`: copy a run's best checkpoint into models/NAME with its config, log and a provenance note."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
from pathlib import Path

import torch


def _resumed_stage(console: Path) -> list[str]:
    """A resumed stage's console, as its header, validation lines and final messages (tqdm frames dropped)."""
    lines = [ln.split("\r")[-1] for ln in console.read_text(errors="replace").splitlines()]
    kept = [ln for ln in lines if "val_acc" in ln or ln.startswith(("resuming", "best checkpoint", "stopped"))]
    return [f"==== {console.name}: resumed stage (tqdm frames dropped; metrics are in log.jsonl) ====", *kept]


def export(run: Path, dest: Path, commands: list[str], checkpoint: str = "best",
           resumed_consoles: list[Path] | None = None) -> Path:
    best = run / checkpoint
    if not (best / "reckoning.json").exists():
        raise SystemExit(f"{best} is not a checkpoint")
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(best, dest)
    train_dir = dest / "training"
    train_dir.mkdir()
    for f in dest.glob("trainer_state.*"):  # optimizer state stays in runs/, it is not part of a model
        f.unlink()
    for name in ("log.jsonl", "config.json"):
        if (run / name).exists():
            shutil.copy(run / name, train_dir / name)
    console = run.with_suffix(".log")
    if console.exists():  # the nohup'd console output, progress-bar carriage returns dropped
        lines = [ln.split("\r")[-1] for ln in console.read_text(errors="replace").splitlines()]
        for extra in resumed_consoles or []:
            lines += _resumed_stage(extra)
        (train_dir / "console.log").write_text("\n".join(ln for ln in lines if ln.strip()) + "\n")
    recs = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if line.strip()]
    cfg = json.loads((run / "config.json").read_text())
    vals = [r for r in recs if "val_acc" in r]
    top = max(vals, key=lambda r: r["val_acc"]) if vals else None
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    size = sum(f.stat().st_size for f in dest.rglob("*") if f.is_file())
    note = [
        f"# {dest.name}", "",
        f"Trained by: {' then '.join(f'`{c}`' for c in commands)}", "",
        f"- config: `training/config.json` (full), method `{cfg['method']}`, init from `{cfg.get('init_from')}`",
        f"- shipped checkpoint: `{checkpoint}` of the run (best = highest held-out validation accuracy)"
        + (f"; its own validation, at step {vals[-1]['step']}: {vals[-1]['val_acc']:.4f}"
           + (f", by set {vals[-1]['val_by_set']}" if vals[-1].get("val_by_set") else "")
           if checkpoint == "last" and vals and vals[-1]["step"] == recs[-1]["step"] else ""),
        f"- steps: {recs[-1]['step']}, wall time: {recs[-1]['elapsed_s'] / 60:.1f} min "
        "(all stages, summed over resumes)",
        f"- best held-out validation accuracy (mean over the held-out sets {cfg.get('val_sets', ['owa'])}; "
        f"owa = owa_train theories never trained on): {top['val_acc']:.4f} at step {top['step']}"
        + (f", by set {top['val_by_set']}" if top.get("val_by_set") else "") if top else "- no validation recorded",
        f"- machine: {platform.machine()}, {os.cpu_count()} CPU cores, no GPU, torch {torch.__version__}, "
        f"{cfg['threads']} torch thread(s)",
        f"- code: git {commit}", f"- folder size: {size / 1e6:.1f} MB", "",
        "Logs: `training/log.jsonl` (one line per logged step), `training/console.log`.",
    ]
    (dest / "TRAINING.md").write_text("\n".join(note) + "\n")
    return dest
