"""`python -m trainer {data,image,tabular,all}`; no arguments = `all --out $TRAINER_OUT`.

Bad input exits with status 2 and one line `trainer: error: ...` (no traceback).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from grocery.synth import DEFAULT_PER_CLASS, generate
from grocery.train import TrainConfig

PROG = "trainer"
OUT_ENV = "TRAINER_OUT"
DEFAULT_OUT = "artifacts"
DATASETS = ("iris", "wine")  # kept in step with trainer.tabular.DATASETS (imported lazily)
TABULAR_SEED = 42
DEFAULT_EPOCHS = TrainConfig.epochs
DEFAULT_SEED = TrainConfig.seed


class UsageError(Exception):
    """Bad command-line input; reported as one line with exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def default_out() -> str:
    """The output folder when none is given: $TRAINER_OUT, else `artifacts`."""
    return os.environ.get(OUT_ENV) or DEFAULT_OUT


def say(line: str) -> None:
    print(line, flush=True)


def _per_class(text: str) -> tuple[int, int, int]:
    try:
        counts = tuple(int(part) for part in text.split(","))
    except ValueError:
        counts = ()
    if len(counts) != 3 or min(counts) < 0:
        raise argparse.ArgumentTypeError(f"expected TRAIN,VAL,TEST counts like 200,40,60: {text!r}")
    return counts  # type: ignore[return-value]


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer: {text!r}")
    return value


def _positive(text: str) -> int:
    value = _non_negative(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer: {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG, description="Generate data and train the grocery and tabular models."
    )
    sub = parser.add_subparsers(dest="command", metavar="{data,image,tabular,all}")

    data = sub.add_parser("data", help="generate the synthetic grocery image set")
    data.add_argument("--out", required=True, type=Path, help="ImageFolder root to write")
    data.add_argument("--seed", type=_non_negative, default=DEFAULT_SEED)
    data.add_argument(
        "--per-class",
        type=_per_class,
        default=DEFAULT_PER_CLASS,
        metavar="TRAIN,VAL,TEST",
        help="images per class and split",
    )

    image = sub.add_parser("image", help="train the grocery CNN")
    image.add_argument(
        "--data",
        type=Path,
        default=None,
        help="ImageFolder root with train/val/test (default: synthetic, temporary)",
    )
    image.add_argument("--out", required=True, type=Path, help="model folder to write")
    image.add_argument("--epochs", type=_positive, default=DEFAULT_EPOCHS)
    image.add_argument("--seed", type=_non_negative, default=DEFAULT_SEED)

    tab = sub.add_parser("tabular", help="compare scikit-learn models on Iris or Wine")
    tab.add_argument("--out", required=True, type=Path, help="model folder to write")
    tab.add_argument("--dataset", choices=DATASETS, default="iris")
    tab.add_argument("--seed", type=_non_negative, default=TABULAR_SEED)

    every = sub.add_parser("all", help="data + image + tabular into OUT/{data,image,tabular}")
    every.add_argument(
        "--out", type=Path, default=None, help=f"default: ${OUT_ENV} or {DEFAULT_OUT}"
    )
    every.add_argument("--dataset", choices=DATASETS, default="iris")
    every.add_argument("--epochs", type=_positive, default=DEFAULT_EPOCHS)
    every.add_argument(
        "--seed",
        type=_non_negative,
        default=None,
        help=f"seed for every step (default: {DEFAULT_SEED} image, {TABULAR_SEED} tabular)",
    )
    return parser


def cmd_data(out: Path, seed: int, per_class: tuple[int, int, int]) -> dict[str, Any]:
    say(f"data: generating {per_class} images per class (train, val, test), seed {seed}")
    summary = generate(out, per_class=per_class, seed=seed, progress=say)
    say(f"data: wrote {sum(summary['counts'].values())} images to {out}")
    return summary


def cmd_image(data: Path | None, out: Path, epochs: int, seed: int) -> dict[str, Any]:
    from trainer.image import run_image

    if data is not None:
        return run_image(data, out, epochs=epochs, seed=seed, progress=say)
    with tempfile.TemporaryDirectory(prefix="grocery-data-") as tmp:
        cmd_data(Path(tmp), seed, DEFAULT_PER_CLASS)
        return run_image(tmp, out, epochs=epochs, seed=seed, progress=say)


def cmd_tabular(out: Path, dataset: str, seed: int) -> dict[str, Any]:
    from trainer.tabular import run_tabular

    return run_tabular(out, dataset, seed=seed, progress=say)


def cmd_all(out: Path, dataset: str, epochs: int, seed: int | None) -> None:
    start = time.perf_counter()
    image_seed = DEFAULT_SEED if seed is None else seed
    cmd_data(out / "data", image_seed, DEFAULT_PER_CLASS)
    image = cmd_image(out / "data", out / "image", epochs, image_seed)
    tabular = cmd_tabular(out / "tabular", dataset, TABULAR_SEED if seed is None else seed)
    say("summary:")
    say(
        f"  image   {out / 'image'}: test accuracy {image['test_accuracy']:.4f} "
        f"(trained in {image['seconds']:.1f}s, weights {image['weights_sha256'][:12]})"
    )
    say(
        f"  tabular {out / 'tabular'}: {tabular['best_model']} on {dataset}, "
        f"test accuracy {tabular['test']['accuracy']:.4f}"
    )
    say(f"  total {time.perf_counter() - start:.1f}s")


def run(args: argparse.Namespace) -> None:
    if args.command == "data":
        cmd_data(args.out, args.seed, args.per_class)
    elif args.command == "image":
        result = cmd_image(args.data, args.out, args.epochs, args.seed)
        say(f"summary: test accuracy {result['test_accuracy']:.4f}, model in {args.out}")
    elif args.command == "tabular":
        result = cmd_tabular(args.out, args.dataset, args.seed)
        say(
            f"summary: {result['best_model']}, test accuracy {result['test']['accuracy']:.4f}, "
            f"model in {args.out}"
        )
    else:
        cmd_all(args.out or Path(default_out()), args.dataset, args.epochs, args.seed)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit status (0 ok, 2 bad input, 130 interrupted)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # As a container's PID 1 the default SIGTERM action is ignored by the kernel: treat
    # `docker stop` like Ctrl-C so the job stops at once instead of being killed later.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        args = build_parser().parse_args(argv or ["all"])
        if args.command is None:
            raise UsageError("choose a command: data, image, tabular or all")
        run(args)
    except (UsageError, ValueError, OSError) as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)
        return 2
    except SystemExit as exc:  # --help / --version from argparse
        return exc.code if isinstance(exc.code, int) else 0
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr, flush=True)
        return 130
    return 0
