"""The `tron` command line. Bad arguments print one line and exit with code 2."""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

from .errors import TronError

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not usage + traceback
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text}")
    return value


def _add_langevin_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--steps", type=_non_negative_int, help="Langevin steps T (default: the world's; 0 = translator only)")
    p.add_argument("--step-size", type=_non_negative_float, help="Langevin gradient step (default: the world's)")
    p.add_argument("--noise-std", type=_non_negative_float, help="Langevin noise std (default: the world's)")
    p.add_argument("--init", choices=["translator", "prior"], default="translator",
                   help="start chains from the translator (TR0N) or from the prior (baseline)")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")


def _langevin_from_args(world, args):
    cfg = world.langevin
    for field, value in (("steps", args.steps), ("step_size", args.step_size), ("noise_std", args.noise_std)):
        if value is not None:
            cfg = replace(cfg, **{field: value})
    return cfg


def _progress(total: int, desc: str):
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, unit="img", disable=None, leave=False)
    return bar, bar.update


def cmd_sample(args) -> int:
    from .images import save_grid, save_npy
    from .world import load_world

    world = load_world(args.world, device=args.device, translator=args.translator)
    if args.label is None:
        raise TronError(f"{world.name}: give a condition, e.g. --label 7")
    if not hasattr(world.encoder, "condition_from_labels"):
        raise TronError(f"{world.name}'s encoder does not take labels")
    c = world.encoder.condition_from_labels(args.label)
    langevin = _langevin_from_args(world, args)
    bar, update = _progress(len(c) * args.n, "sampling")
    t0 = time.perf_counter()
    result = world.sampler().sample(c, args.n, langevin, seed=args.seed, init=args.init, progress=update)
    bar.close()
    seconds = time.perf_counter() - t0
    written = []
    if args.out:
        written.append(save_grid(result.images, args.out, nrow=args.n if len(c) > 1 else None, upscale=args.upscale))
    if args.npy:
        written.append(save_npy(result.images, args.npy))
    print(f"{len(result.images)} samples of {world.name} for labels {args.label} in {seconds:.2f} s "
          f"(T={langevin.steps}, mean energy {float(result.energies.mean()):.3f})")
    for path in written:
        print(f"wrote {path}")
    return 0


def cmd_eval(args) -> int:
    from .evaluation import DIGITS_COLUMNS, default_methods, evaluate_digits, markdown_table
    from .world import load_world

    world = load_world(args.world, device=args.device, translator=args.translator)
    if world.name != "digits":
        raise TronError(f"tron eval knows the digits world; {world.name!r} has no judge yet")
    langevin = _langevin_from_args(world, args)
    rows = evaluate_digits(world, n_per_label=args.n, seed=args.seed, methods=default_methods(langevin.steps), langevin=langevin)
    print(f"digits world: {args.n} samples per label, seed {args.seed}, judge: RBF SVM on pixels "
          f"(held-out accuracy {rows[0]['judge_held_out_accuracy']:.1%}); Langevin {langevin}")
    print(markdown_table(rows, DIGITS_COLUMNS))
    return 0


def cmd_list(args) -> int:
    from .encoders import ENCODERS
    from .generators import GENERATORS
    from .world import _import_zoo_models, list_zoo

    _import_zoo_models()
    print("zoo worlds:  " + ", ".join(f"zoo:{n}" for n in list_zoo()))
    print("generators:  " + ", ".join(GENERATORS.names()))
    print("encoders:    " + ", ".join(ENCODERS.names()))
    return 0


def cmd_demo(args) -> int:
    """The main job on the embedded defaults: a grid of every digit, TR0N vs translator only."""
    from .images import save_grid
    from .world import load_world

    out = Path(args.out)
    world = load_world("zoo:digits")
    c = world.encoder.condition_from_labels(list(range(10)))
    written = []
    for steps, name in ((world.langevin.steps, "digits_tron.png"), (0, "digits_translator_only.png")):
        cfg = replace(world.langevin, steps=steps)
        bar, update = _progress(10 * args.n, f"T={steps}")
        res = world.sampler().sample(c, args.n, cfg, seed=args.seed, progress=update)
        bar.close()
        # one row per digit: transpose so that each column is a digit 0..9
        images = res.images.view(10, args.n, *res.images.shape[1:]).transpose(0, 1).reshape(-1, *res.images.shape[1:])
        written.append(save_grid(images, out / name, nrow=10, upscale=4))
        print(f"T={steps:>3}: mean energy {float(res.energies.mean()):.3f}")
    for path in written:
        print(f"wrote {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tron", description="TR0N: conditional sampling from frozen unconditional generators.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="COMMAND")

    p = sub.add_parser("sample", help="sample images for a condition and write a PNG grid / .npy")
    p.add_argument("world", help="zoo:NAME or a world directory")
    p.add_argument("--label", type=int, action="append", help="class label (repeat for several)")
    p.add_argument("-n", type=_positive_int, default=16, help="samples per condition (default 16)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="PNG grid to write")
    p.add_argument("--npy", help="float32 .npy of the images, shape (N, C, H, W)")
    p.add_argument("--upscale", type=_positive_int, default=4, help="nearest-neighbour upscale of the PNG grid")
    p.add_argument("--translator", help="translator directory to use instead of the world's")
    _add_langevin_args(p)
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("eval", help="judge sample quality: translator only vs TR0N vs random-prior Langevin")
    p.add_argument("world", nargs="?", default="zoo:digits")
    p.add_argument("-n", type=_positive_int, default=100, help="samples per label (default 100)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--translator", help="translator directory to use instead of the world's")
    _add_langevin_args(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("list", help="list zoo worlds, generators and encoders")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("demo", help="the main job on the embedded defaults: digit grids into --out")
    p.add_argument("--out", default="outputs", help="folder for the grids (default outputs/)")
    p.add_argument("-n", type=_positive_int, default=8, help="samples per digit (default 8)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (TronError, ValueError) as exc:
        print(f"tron {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
