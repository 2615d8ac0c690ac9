"""The `tron` command line. Bad arguments print one line and exit with code 2."""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

from .allocator import keep_freed_memory
from .errors import TronError

EXIT_USAGE = 2
COMMANDS_GROUP = "tron.commands"  # entry points: commands that live in other packages (serve, watch)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not usage + traceback
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _integer(text: str, low: int | None = None, what: str = "an integer") -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if low is not None and value < low:
        raise argparse.ArgumentTypeError(f"expected {what}, got {value}")
    return value


def positive_int(text: str) -> int:
    return _integer(text, 1, "a positive integer")


def non_negative_int(text: str) -> int:
    return _integer(text, 0, "an integer >= 0")


def seed_int(text: str) -> int:
    value = _integer(text, 0, "a seed, an integer >= 0")
    if value >= 2**63:
        raise argparse.ArgumentTypeError(f"expected a seed below 2**63, got {value}")
    return value


def finite_float(text: str) -> float:
    """A finite number: 'nan', 'inf' and numbers that overflow to infinity are refused."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def non_negative_float(text: str) -> float:
    value = finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text}")
    return value


def _weights(text: str) -> list[float]:
    try:
        return [finite_float(w) for w in text.split(",")]
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected comma-separated finite numbers, e.g. 1,-0.5, got {text!r}") from None


def _add_langevin_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--langevin", metavar="PRESET_OR_JSON",
                   help="Langevin settings: a preset (world, reference) or a JSON object of fields over the world's")
    p.add_argument("--steps", type=non_negative_int, help="Langevin steps T (default: the world's; 0 = translator only)")
    p.add_argument("--step-size", type=non_negative_float, help="Langevin gradient step (default: the world's)")
    p.add_argument("--noise-std", type=non_negative_float, help="Langevin noise std (default: the world's)")
    p.add_argument("--init", choices=["translator", "prior"], default="translator",
                   help="start chains from the translator (TR0N) or from the prior (baseline)")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")


def _device(name: str) -> str:
    import torch

    if name.startswith("cuda") and not torch.cuda.is_available():
        raise TronError(f"--device {name}: no CUDA device is available here")
    return name


def _langevin_from_args(world, args):
    from .presets import resolve

    base = resolve(args.langevin, world.langevin, world.generator)
    return base.with_overrides(steps=args.steps, step_size=args.step_size, noise_std=args.noise_std)


def _progress(total: int, desc: str):
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, unit="img", disable=None, leave=False)
    return bar, bar.update


def _condition_from_args(world, args):
    from . import conditions

    kinds = world.encoder.condition_kinds
    if args.label and "label" not in kinds:
        raise TronError(f"{world.name}'s encoder takes {' or '.join(kinds)}, not labels; use --text or --image")
    for kind in sorted({kind for kind, _ in args.conditions or []}):
        if kind not in kinds:
            raise TronError(f"{world.name}'s encoder takes {' or '.join(kinds)}, not {kind}"
                            + ("; use --label" if "label" in kinds else ""))
    return conditions.build(world.encoder, labels=args.label, items=args.conditions, weights=args.weights,
                            interpolate_steps=args.interpolate)


def cmd_sample(args) -> int:
    from .images import save_grid, save_npy
    from .world import load_world

    world = load_world(args.world, device=_device(args.device), translator=args.translator)
    condition = _condition_from_args(world, args)
    langevin = _langevin_from_args(world, args)
    sampler = world.sampler(condition.kind)
    bar, update = _progress(len(condition) * args.n, "sampling")
    t0 = time.perf_counter()
    if args.interpolate:  # frames that change smoothly: each sample keeps its component and noise along the path
        result = sampler.sample_path(condition.c, args.n, langevin, seed=args.seed, init=args.init)
    else:
        result = sampler.sample(condition.c, args.n, langevin, seed=args.seed, init=args.init, progress=update)
    bar.close()
    seconds = time.perf_counter() - t0
    written = []
    if args.out:
        written.append(save_grid(result.images, args.out, nrow=args.n if len(condition) > 1 else None, upscale=args.upscale))
    if args.npy:
        written.append(save_npy(result.images, args.npy))
    print(f"{len(result.images)} samples of {world.name} for {condition.description} in {seconds:.2f} s "
          f"(T={langevin.steps}, mean energy {float(result.energies.mean()):.3f})")
    for path in written:
        print(f"wrote {path}")
    return 0


def cmd_eval(args) -> int:
    from .evaluation import markdown_table
    from .judges import load_judge
    from .world import load_world

    world = load_world(args.world, device=_device(args.device), translator=args.translator)
    judge = load_judge(world)
    if judge is None:
        raise TronError(f"{world.name} names no judge in its world.json; tron eval needs one (see tron list)")
    langevin = _langevin_from_args(world, args)
    print(f"{world.name} world: seed {args.seed}; {judge.describe()}; Langevin {langevin}")
    bar, update = _progress(None, "sampling")
    tables = judge.tables(n=args.n, seed=args.seed, langevin=langevin, progress=update, prompts=args.prompts)
    bar.close()
    for title, rows, columns in tables:
        print(f"\n{title}:")
        print(markdown_table(rows, columns))
    return 0


def cmd_list(args) -> int:
    """Zoo worlds with G's latent size and f's embedding size, the registered checkpoint kinds,
    the adapter specs for models from other libraries, and the judges."""
    from importlib.metadata import entry_points

    from .components import SCHEMES, component_fingerprint, load_encoder_spec, load_generator_spec, resolve_part
    from .encoders import ENCODERS
    from .generators import GENERATORS
    from .world import ZOO_ROOT, WorldConfig, list_zoo

    print("zoo worlds (G latent size d, f condition size k):")
    for name in list_zoo():
        root = ZOO_ROOT / name
        config = WorldConfig.load(root)
        line = f"  zoo:{name:<11} "
        try:
            g = load_generator_spec(resolve_part(str(root), "generator"))
            f = load_encoder_spec(resolve_part(str(root), "encoder"))
            line += (f"G {getattr(g, 'registry_name', type(g).__name__)} (d={g.latent_dim}, image {tuple(g.image_shape)}), "
                     f"f {getattr(f, 'registry_name', type(f).__name__)} ({f.kind}, k={f.embed_dim}; "
                     f"conditions: {', '.join(f.condition_kinds)})")
        except TronError as exc:  # e.g. a world whose parts come from a package that is not installed
            line += f"not loadable here: {exc}"
        missing = [k for k, v in config.translators.items() if not (root / v).is_dir()]
        print(line + (f", no {'/'.join(missing)} translator" if missing else ""))
        if config.description:
            print(f"  {'':<15} {config.description}")
    for title, registry in (("generators", GENERATORS), ("encoders", ENCODERS)):
        print(f"{title} (checkpoint kinds, entry-point group {registry.group!r}):")
        for kind, target in registry.describe().items():
            print(f"  {kind:<24} {target}")
    print("adapter specs (--generator / --encoder; tron.components.SCHEMES):")
    for row in SCHEMES.values():
        print(f"  {row.usage:<48} {'G or f' if row.part is None else ('G' if row.part == 'generator' else 'f'):<6} {row.summary}")
    print("judges (world.json \"judge\": {\"kind\": ...}; entry-point group 'tron.judges'):")
    for ep in sorted(entry_points(group="tron.judges"), key=lambda e: e.name):
        print(f"  {ep.name:<24} {ep.value}")
    for path in args.worlds or []:
        root = Path(path)
        config = WorldConfig.load(root)
        fps = {p: component_fingerprint(resolve_part(str(root), p), p) for p in ("generator", "encoder")}
        print(f"world {root}: {config.name}: G {config.generator} ({fps['generator']}), f {config.encoder} ({fps['encoder']}), "
              f"translators {config.translators}")
    return 0


def cmd_demo(args) -> int:
    """The library-only demo: a grid of every digit, TR0N vs translator only."""
    from .images import save_grid
    from .world import load_world

    out = Path(args.out)
    world = load_world("zoo:digits")
    c = world.encoder.condition_from_labels(list(range(10)))
    written = []
    for steps, name in ((world.langevin.steps, "digits_tron.png"), (0, "digits_translator_only.png")):
        cfg = world.langevin.with_overrides(steps=steps)
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


def _condition_item(kind: str):
    return lambda value: (kind, value)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tron", description="TR0N: conditional sampling from frozen unconditional generators.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="COMMAND")

    p = sub.add_parser("sample", help="sample images for a condition and write a PNG grid / .npy")
    p.add_argument("world", help="zoo:NAME or a world directory")
    p.add_argument("--label", action="append", metavar="LABEL",
                   help="class index or class name, e.g. 836 or sunglasses (repeat for several)")
    p.add_argument("--text", dest="conditions", action="append", type=_condition_item("text"), metavar="PROMPT",
                   help="text prompt for a CLIP world (repeat for several)")
    p.add_argument("--image", dest="conditions", action="append", type=_condition_item("image"), metavar="FILE",
                   help="image file: sample semantic variations of it (repeat for several)")
    p.add_argument("--weights", type=_weights, help="compose all --text/--image into one energy with these weights, e.g. 1,-0.5")
    p.add_argument("--interpolate", type=positive_int, metavar="N",
                   help="N conditions interpolated between exactly two --text/--image")
    p.add_argument("-n", type=positive_int, default=16, help="samples per condition (default 16)")
    p.add_argument("--seed", type=seed_int, default=0)
    p.add_argument("--out", help="PNG grid to write")
    p.add_argument("--npy", help="float32 .npy of the images, shape (N, C, H, W)")
    p.add_argument("--upscale", type=positive_int, default=4, help="nearest-neighbour upscale of the PNG grid")
    p.add_argument("--translator", help="translator directory (or models:/NAME@alias) instead of the world's")
    _add_langevin_args(p)
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("eval", help="judge sample quality: translator only vs TR0N vs random-prior Langevin")
    p.add_argument("world", nargs="?", default="zoo:digits")
    p.add_argument("-n", type=positive_int, help="samples per condition (default: the judge's: 100 per digit, 8 per prompt)")
    p.add_argument("--prompts", choices=["full", "partial", "image", "both", "all"], default="all",
                   help="shapes world: the 210 full captions, the 111 partial prompts, image variation of the 210 "
                        "combinations' renders, both prompt sets, or all three (default)")
    p.add_argument("--seed", type=seed_int, default=0)
    p.add_argument("--translator", help="translator directory to use instead of the world's")
    _add_langevin_args(p)
    p.set_defaults(func=cmd_eval)

    # Their options belong to the entrypoints they hand over to (see main()).
    sub.add_parser("serve", add_help=False, help="serve sampling over HTTP with Ray Serve (tron serve --help)")
    sub.add_parser("watch", add_help=False,
                   help="retrain on a schedule: tron watch --every 6h [retrain options] (tron watch --help)")
    sub.add_parser("world", add_help=False, help="make a world directory from specs: tron world create DIR ... (tron world --help)")

    p = sub.add_parser("list", help="list zoo worlds, generators, encoders, adapter specs and judges")
    p.add_argument("worlds", nargs="*", help="world directories to describe too")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("demo", help="the library-only demo: digit grids into --out (the pipeline demo is `make demo`)")
    p.add_argument("--out", default="outputs", help="folder for the grids (default outputs/)")
    p.add_argument("-n", type=positive_int, default=8, help="samples per digit (default 8)")
    p.add_argument("--seed", type=seed_int, default=0)
    p.set_defaults(func=cmd_demo)
    return parser


def _hand_over(command: str, argv: list[str]) -> int:
    """Commands implemented elsewhere: `tron world` here (tron.worlds), `tron serve` and `tron watch`
    in the pipelines (entry points in group tron.commands, which bring Ray and MLflow)."""
    from importlib.metadata import entry_points

    if command == "world":
        from .worlds import main as entry
    else:
        found = [ep for ep in entry_points(group=COMMANDS_GROUP) if ep.name == command]
        if not found:
            print(f"tron {command}: error: needs the pipelines (Ray, MLflow): pip install 'tron[pipelines]'", file=sys.stderr)
            return EXIT_USAGE
        try:
            entry = found[0].load()
        except ImportError as exc:
            print(f"tron {command}: error: needs the pipelines (Ray, MLflow): pip install 'tron[pipelines]' ({exc})",
                  file=sys.stderr)
            return EXIT_USAGE
    try:
        return entry(argv)
    except TronError as exc:
        print(f"tron {command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] in (["serve"], ["watch"], ["world"]):  # argparse.REMAINDER cannot pass leading options on
        return _hand_over(argv[0], argv[1:])
    args = build_parser().parse_args(argv)
    keep_freed_memory()  # sampling and evaluation run G and f over many batches
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
