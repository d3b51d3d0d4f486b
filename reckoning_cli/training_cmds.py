"""`reckoning train | eval | export | configure | grow | report`: meta-training, evaluation, shipping, configuring
and growing a model, results (`training`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from reckoning_core.config import DEFAULT_MODEL_DIR


def _train(args: argparse.Namespace) -> None:
    from training.cli import train_cmd

    train_cmd(args.config, args.overrides)


def _eval(args: argparse.Namespace) -> None:
    from training.cli import eval_cmd

    eval_cmd(model=args.model, data=args.data, setting=args.setting, method=args.method, out=args.out,
             limit=args.limit, threads=args.threads, device=args.device, recall=args.recall, split=args.split,
             inner_autocast=args.inner_autocast, delta_rank=args.delta_rank, delta_dtype=args.delta_dtype,
             predictions=args.predictions)


def _export(args: argparse.Namespace) -> None:
    from training.export import export

    print(export(args.run, args.dest, args.command_line, args.checkpoint, args.resumed_console))


def _configure(args: argparse.Namespace) -> None:
    from reckoning_core.checkpoint import set_lr_size_ref

    print(f"{args.model}: lr_size_ref {args.lr_size_ref}, fingerprint {set_lr_size_ref(args.model, args.lr_size_ref)}")


def _grow(args: argparse.Namespace) -> None:
    from training.grow import grow_cmd

    grow_cmd(args.src, args.dest, args.insert_after)


def _report(args: argparse.Namespace) -> None:
    from training.report import report

    report(evaluate=args.evaluate, force=args.force, threads=args.threads, limit=args.limit, models=args.model,
           tags=args.tags.split(",") if args.tags else None)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    t = sub.add_parser("train", help="meta-train (RECKONING) or fine-tune the in-context baseline; resumable")
    t.add_argument("--config", required=True, help="training/configs/NAME.yaml")
    t.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    t.set_defaults(handler=_train, extra="train")

    v = sub.add_parser("eval", help="accuracy (overall, by grammar, depth and knowledge size) as JSON")
    v.add_argument("--model", default=str(DEFAULT_MODEL_DIR))
    v.add_argument("--data", default=None,
                   help="a ProofWriter file in any shared format (owa_dev_natlang, owa_train, depth5_mixed), or "
                        "generated:SIZES:N (e.g. generated:1-4:200, generated:1,4,16,64:30, generated:onehop:100); "
                        "default: $RECKONING_DATA_DIR/proofwriter/owa_dev_natlang.jsonl")
    v.add_argument("--setting", choices=["full-theory", "proof-only"], default="full-theory")
    v.add_argument("--method", choices=["reckoning", "icr", "no-knowledge"], default="reckoning")
    v.add_argument("--out", default=None)
    v.add_argument("--limit", type=int, default=None, help="first N theories only")
    v.add_argument("--split", choices=["all", "dev", "train"], default="all",
                   help="depth5_mixed only: the held-out dev contexts, the training ones, or all")
    v.add_argument("--threads", type=int, default=None)
    v.add_argument("--device", default=None, help="auto, cpu, cuda, cuda:N (default: $RECKONING_DEVICE or auto)")
    v.add_argument("--no-recall", dest="recall", action="store_false")
    v.add_argument("--inner-autocast", choices=["off", "bf16", "fp16", "auto"], default="off",
                   help="precision of the encode's inner loop (default off: float32; the service's default is auto)")
    v.add_argument("--delta-dtype", choices=["float32", "float16", "bfloat16"], default=None,
                   help="answer from the delta as the service stores it, at this dtype (default: the exact delta)")
    v.add_argument("--delta-rank", type=int, default=0,
                   help="with --delta-dtype: rank-r SVD factors, as RECKONING_DELTA_RANK (0 = dense)")
    v.add_argument("--predictions", default=None, metavar="FILE",
                   help="also write every question's gold label, answer and option probabilities as JSON lines")
    v.set_defaults(handler=_eval, extra="train")

    x = sub.add_parser("export", help="ship a run: its best checkpoint into models/NAME with its log and TRAINING.md")
    x.add_argument("run", type=Path, help="runs/NAME")
    x.add_argument("dest", type=Path, help="models/NAME")
    x.add_argument("--command", dest="command_line", action="append", default=[],
                   help="the command(s) that trained it, in order")
    x.add_argument("--checkpoint", choices=["best", "last"], default="best")
    x.add_argument("--resumed-console", action="append", type=Path, default=[],
                   help="console log of a resumed stage, in order (RUN.log is the first stage's)")
    x.set_defaults(handler=_export, extra="train")

    c = sub.add_parser("configure", help="set a shipped model's encode-time LR size scaling (weights unchanged)")
    c.add_argument("model", type=Path, help="models/NAME")
    c.add_argument("--lr-size-ref", type=int, required=True,
                   help="sets of n facts past this many encode with every inner LR times sqrt(n / it); 0 = off")
    c.set_defaults(handler=_configure, extra="train")

    g = sub.add_parser("grow", help="a deeper checkpoint computing the same function (identity blocks inserted)")
    g.add_argument("src", type=Path, help="a checkpoint folder")
    g.add_argument("dest", type=Path, help="where to write the grown checkpoint")
    g.add_argument("--insert-after", type=int, action="append", required=True, metavar="BLOCK",
                   help="insert an identity block after this block (0-based; repeatable)")
    g.set_defaults(handler=_grow, extra="train")

    r = sub.add_parser("report", help="results/: accuracy tables and plots, and the README's results section")
    r.add_argument("--evaluate", action="store_true", help="run missing evaluations first")
    r.add_argument("--force", action="store_true", help="re-run every evaluation")
    r.add_argument("--threads", type=int, default=None)
    r.add_argument("--limit", type=int, default=None)
    r.add_argument("--model", action="append", default=None, metavar="FOLDER",
                   help="with --evaluate/--force: only this model's evaluations (repeatable)")
    r.add_argument("--tags", default=None, metavar="TAG,...",
                   help="with --evaluate/--force: only these evaluations (full-theory, proof-only, depth5-dev, ...)")
    r.set_defaults(handler=_report, extra="train")
