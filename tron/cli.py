"""The `tron` command line. Bad arguments print one line and exit with code 2.

    tron sample | eval | list | demo | world create    here, over the library
    tron serve | watch                                 commands of other packages (registry COMMANDS,
                                                       entry-point group tron.commands: the pipelines)
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from . import conditions
from .allocator import keep_freed_memory
from .arguments import (
    EXIT_USAGE,
    Parser,
    condition_item,
    json_object,
    non_negative_float,
    non_negative_int,
    positive_int,
    seed_int,
    weights,
)
from .captioners import CAPTIONERS
from .components import component_fingerprint, component_spec, load_encoder_spec, load_generator_spec
from .encoders import ENCODERS
from .errors import TronError
from .evaluation import markdown_table
from .generators import GENERATORS
from .images import save_grid, save_npy
from .judges import JUDGES, load_judge
from .presets import langevin_settings
from .registry import Registry
from .specs import SCHEMES
from .uris import RESOLVERS
from .world import ACCEPT_UNVERIFIED, create_world, load_world
from .world_config import ZOO_ROOT, WorldConfig, list_zoo

COMMANDS: Registry = Registry("command", "tron.commands", hint="it needs the pipelines (Ray, MLflow): pip install 'tron[pipelines]'")
# What `tron list` prints after the zoo: every registry of parts, in one loop.
REGISTRIES = (GENERATORS, ENCODERS, CAPTIONERS, SCHEMES, JUDGES, RESOLVERS, COMMANDS)


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
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise TronError(f"--device {name}: no CUDA device is available here")
    return name


def _langevin_from_args(world, args):
    base = langevin_settings(args.langevin, world.langevin, world.generator)
    return base.with_overrides(steps=args.steps, step_size=args.step_size, noise_std=args.noise_std)


def _progress(total: int | None, desc: str):
    bar = tqdm(total=total, desc=desc, unit="img", disable=None, leave=False)
    return bar, bar.update


def _condition_from_args(world, args):
    """The condition the flags ask for; a kind the world's f cannot take is refused with the flag to use."""
    takes = world.encoder.condition_kinds
    asked = (["label"] if args.label else []) + sorted({kind for kind, _ in args.conditions or []})
    for kind in asked:
        conditions.check_kind(world.encoder, kind, who=f"{world.name}'s encoder",
                              hint="use --label" if "label" in takes else "use --text or --image")
    return conditions.build(world.encoder, labels=args.label, items=args.conditions, weights=args.weights,
                            interpolate_steps=args.interpolate)


def _add_accept_unverified(p: argparse.ArgumentParser) -> None:
    p.add_argument(ACCEPT_UNVERIFIED, action="store_true",
                   help="use a translator that records no G or f fingerprint (unchecked; a warning says so on every use)")


def cmd_sample(args) -> int:
    world = load_world(args.world, device=_device(args.device), translator=args.translator,
                       accept_unverified=args.accept_unverified_translator)
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
    world = load_world(args.world, device=_device(args.device), translator=args.translator,
                       accept_unverified=args.accept_unverified_translator)
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


def _zoo_line(name: str) -> str:
    """A zoo world with G's latent size and f's embedding size (or why it does not load here)."""
    root = ZOO_ROOT / name
    config = WorldConfig.load(root)
    line = f"  zoo:{name:<11} "
    try:
        g = load_generator_spec(component_spec(str(root), "generator"))
        f = load_encoder_spec(component_spec(str(root), "encoder"))
        line += (f"G {GENERATORS.name_of(type(g), type(g).__name__)} (d={g.latent_dim}, image {tuple(g.image_shape)}), "
                 f"f {ENCODERS.name_of(type(f), type(f).__name__)} ({f.kind}, k={f.embed_dim}; "
                 f"conditions: {', '.join(f.condition_kinds)})")
    except TronError as exc:  # e.g. a world whose parts come from a package that is not installed
        line += f"not loadable here: {exc}"
    missing = [k for k, v in config.translators.items() if not (root / v).is_dir()]
    line += f", no {'/'.join(missing)} translator" if missing else ""
    return line + (f"\n  {'':<15} {config.description}" if config.description else "")


def cmd_list(args) -> int:
    """Zoo worlds, then every registry: checkpoint kinds, adapter specs, judges, URI resolvers and commands."""
    print("zoo worlds (G latent size d, f condition size k):")
    for name in list_zoo():
        print(_zoo_line(name))
    for registry in REGISTRIES:
        print(f"{registry.what}s (entry-point group {registry.group!r}):")
        for name, line in registry.describe().items():
            print(f"  {name:<24} {line}")
    for path in args.worlds or []:
        root = Path(path)
        config = WorldConfig.load(root)
        fps = {p: component_fingerprint(component_spec(str(root), p), p) for p in ("generator", "encoder")}
        print(f"world {root}: {config.name}: G {config.generator} ({fps['generator']}), f {config.encoder} ({fps['encoder']}), "
              f"translators {config.translators}")
    return 0


def cmd_demo(args) -> int:
    """The library-only demo: a grid of every digit, TR0N vs translator only."""
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


def cmd_world_create(args) -> int:
    config = create_world(args.dir, args.generator, args.encoder, args.translator, args.image_translator, args.langevin,
                          args.translator_std_scale, args.judge, args.name, args.description, args.allow_pickle,
                          args.accept_unverified_translator)
    print(f"wrote world {config.name!r} to {args.dir}: G {config.generator} ({config.fingerprints['generator']}), "
          f"f {config.encoder} ({config.fingerprints['encoder']}), translators {config.translators}")
    print(f"use it: tron sample {args.dir} ...; tron serve --world {args.dir}")
    return 0


def cmd_hand_over(args, argv: list[str]) -> int:
    """A command of another package (registry COMMANDS): it parses its own arguments."""
    return COMMANDS.get(args.command)(argv)


def _add_sample(sub) -> None:
    p = sub.add_parser("sample", help="sample images for a condition and write a PNG grid / .npy")
    p.add_argument("world", help="zoo:NAME or a world directory")
    p.add_argument("--label", action="append", metavar="LABEL",
                   help="class index or class name, e.g. 836 or sunglasses (repeat for several)")
    p.add_argument("--text", dest="conditions", action="append", type=condition_item("text"), metavar="PROMPT",
                   help="text prompt for a CLIP world (repeat for several)")
    p.add_argument("--image", dest="conditions", action="append", type=condition_item("image"), metavar="FILE",
                   help="image file: sample semantic variations of it (repeat for several)")
    p.add_argument("--weights", type=weights, help="compose all --text/--image into one energy with these weights, e.g. 1,-0.5")
    p.add_argument("--interpolate", type=positive_int, metavar="N",
                   help="N conditions interpolated between exactly two --text/--image")
    p.add_argument("-n", type=positive_int, default=16, help="samples per condition (default 16)")
    p.add_argument("--seed", type=seed_int, default=0)
    p.add_argument("--out", help="PNG grid to write")
    p.add_argument("--npy", help="float32 .npy of the images, shape (N, C, H, W)")
    p.add_argument("--upscale", type=positive_int, default=4, help="nearest-neighbour upscale of the PNG grid")
    p.add_argument("--translator", help="translator directory (or models:/NAME@alias) instead of the world's")
    _add_accept_unverified(p)
    _add_langevin_args(p)
    p.set_defaults(func=cmd_sample)


def _add_eval(sub) -> None:
    p = sub.add_parser("eval", help="judge sample quality: translator only vs TR0N vs random-prior Langevin")
    p.add_argument("world", nargs="?", default="zoo:digits")
    p.add_argument("-n", type=positive_int, help="samples per condition (default: the judge's: 100 per digit, 8 per prompt)")
    p.add_argument("--prompts", choices=["full", "partial", "image", "both", "all"], default="all",
                   help="shapes world: the 210 full captions, the 111 partial prompts, image variation of the 210 "
                        "combinations' renders, both prompt sets, or all three (default)")
    p.add_argument("--seed", type=seed_int, default=0)
    p.add_argument("--translator", help="translator directory to use instead of the world's")
    _add_accept_unverified(p)
    _add_langevin_args(p)
    p.set_defaults(func=cmd_eval)


def _add_world(sub) -> None:
    world = sub.add_parser("world", help="make a world directory from specs: tron world create DIR ... (tron world create --help)")
    actions = world.add_subparsers(dest="action", required=True, parser_class=Parser, metavar="ACTION")
    c = actions.add_parser("create", help="write a world directory that refers to G, f and translators")
    c.add_argument("dir", help="the world directory to write (must not exist, or be empty)")
    c.add_argument("--generator", required=True, help="G: an adapter spec, zoo:NAME or a checkpoint directory")
    c.add_argument("--encoder", required=True, help="f: an adapter spec, zoo:NAME or a checkpoint directory")
    c.add_argument("--translator", help="the translator: a directory (copied in) or models:/NAME@alias (followed)")
    c.add_argument("--image-translator", help="a translator for image conditions (trained without text noise)")
    c.add_argument("--langevin", help="sampling defaults: a preset (reference) or a JSON object of Langevin settings")
    c.add_argument("--translator-std-scale", type=float, default=1.0, help="scale of the mixture's std when drawing z0")
    c.add_argument("--judge", type=json_object, help='the measuring instrument as JSON, '
                                                     'e.g. {"kind": "imagenet-classifier", "encoder": "efficientnet:lite2"}')
    c.add_argument("--name", help="the world's name (default: the directory's)")
    c.add_argument("--description", default="")
    c.add_argument("--allow-pickle", action="store_true", help="let G and f read pickled weights files you trust")
    _add_accept_unverified(c)
    c.set_defaults(func=cmd_world_create)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="tron", description="TR0N: conditional sampling from frozen unconditional generators.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser, metavar="COMMAND")
    _add_sample(sub)
    _add_eval(sub)
    _add_world(sub)
    for name, target in COMMANDS.describe().items():  # their options are their own: the rest of argv goes to them
        sub.add_parser(name, add_help=False, help=f"{target} (tron {name} --help)").set_defaults(func=cmd_hand_over)

    p = sub.add_parser("list", help="list zoo worlds and every registry: kinds, adapter specs, judges, resolvers, commands")
    p.add_argument("worlds", nargs="*", help="world directories to describe too")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("demo", help="the library-only demo: digit grids into --out (the pipeline demo is `make demo`)")
    p.add_argument("--out", default="outputs", help="folder for the grids (default outputs/)")
    p.add_argument("-n", type=positive_int, default=8, help="samples per digit (default 8)")
    p.add_argument("--seed", type=seed_int, default=0)
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(sys.argv[1:] if argv is None else list(argv))
    handing_over = args.func is cmd_hand_over
    if rest and not handing_over:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if not handing_over:
        keep_freed_memory()  # sampling and evaluation run G and f over many batches
    try:
        return cmd_hand_over(args, rest) if handing_over else args.func(args)
    except TronError as exc:  # bad input, files or configuration: one line; anything else is a bug and surfaces
        print(f"tron {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
