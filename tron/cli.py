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


def _weights(text: str) -> list[float]:
    try:
        return [float(w) for w in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, e.g. 1,-0.5, got {text!r}") from None


def _condition_from_args(world, args):
    """(c (M, k), a short description) from --label, or --text/--image with --weights/--interpolate."""
    given = args.conditions or []
    if args.label is not None and given:
        raise TronError("give either --label or --text/--image, not both")
    if args.label is not None:
        if not hasattr(world.encoder, "condition_from_labels"):
            raise TronError(f"{world.name}'s encoder does not take labels; use --text or --image")
        return world.encoder.condition_from_labels(args.label), f"labels {args.label}"
    if not given:
        example = "--text \"a red circle\"" if hasattr(world.encoder, "condition_from_text") else "--label 7"
        raise TronError(f"{world.name}: give a condition, e.g. {example}")
    if not hasattr(world.encoder, "condition_from_text"):
        raise TronError(f"{world.name}'s encoder takes labels, not text or images; use --label")
    import torch

    from .clip import compose, interpolate

    rows = [world.encoder.condition_from_text([v]) if kind == "text" else world.encoder.condition_from_images([v])
            for kind, v in given]
    c = torch.cat(rows)
    names = " | ".join(f"{kind} {v!r}" for kind, v in given)
    if args.weights is not None and args.interpolate is not None:
        raise TronError("give either --weights or --interpolate, not both")
    if args.weights is not None:
        if len(args.weights) != len(given):
            raise TronError(f"{len(args.weights)} weights for {len(given)} conditions: give one weight per --text/--image")
        return compose(c, args.weights), f"the composition {' + '.join(f'{w:g} x {kind} {v!r}' for w, (kind, v) in zip(args.weights, given))}"
    if args.interpolate is not None:
        if len(given) != 2:
            raise TronError(f"--interpolate needs exactly two conditions, got {len(given)}")
        return interpolate(c[0], c[1], args.interpolate), f"{args.interpolate} steps from {names}"
    return c, names


def cmd_sample(args) -> int:
    from .images import save_grid, save_npy
    from .world import load_world

    world = load_world(args.world, device=args.device, translator=args.translator)
    c, described = _condition_from_args(world, args)
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
    print(f"{len(result.images)} samples of {world.name} for {described} in {seconds:.2f} s "
          f"(T={langevin.steps}, mean energy {float(result.energies.mean()):.3f})")
    for path in written:
        print(f"wrote {path}")
    return 0


def cmd_eval(args) -> int:
    from . import adapters  # noqa: F401  (registers G and f classes of worlds such as digits-cm)
    from .evaluation import DIGITS_COLUMNS, default_methods, evaluate_digits, markdown_table
    from .world import load_world

    world = load_world(args.world, device=args.device, translator=args.translator)
    if world.name == "shapes":
        return _eval_shapes(world, args)
    if world.name not in DIGITS_WORLDS:
        raise TronError(f"tron eval knows the {', '.join(DIGITS_WORLDS)} and shapes worlds; {world.name!r} has no judge yet")
    langevin = _langevin_from_args(world, args)
    args.n = args.n or 100
    rows = evaluate_digits(world, n_per_label=args.n, seed=args.seed, methods=default_methods(langevin.steps), langevin=langevin)
    print(f"{world.name} world: {args.n} samples per label, seed {args.seed}, judge: RBF SVM on pixels "
          f"(held-out accuracy {rows[0]['judge_held_out_accuracy']:.1%}); Langevin {langevin}")
    print(markdown_table(rows, DIGITS_COLUMNS))
    return 0


def _eval_shapes(world, args) -> int:
    from .evaluation import SHAPES_COLUMNS, clip_methods, evaluate_prompts, markdown_table
    from .world import resolve_world_path
    from .zoo import shapes

    judge = shapes.load_judge(resolve_world_path(args.world) / "judge")
    langevin = _langevin_from_args(world, args)
    n = args.n or 8
    sets = {"full": shapes.full_prompt_set, "partial": shapes.partial_prompt_set}
    chosen = list(sets) if args.prompts == "both" else [args.prompts]
    held_out = judge.metadata.get("held_out_degraded_all", float("nan"))
    print(f"shapes world: {n} samples per prompt, seed {args.seed}; judge: attribute CNN "
          f"(held-out accuracy {held_out:.1%} on degraded renders); Langevin {langevin}; energy views {world.encoder.augment}")
    for name in chosen:
        prompts = sets[name]()
        bar, update = _progress(len(prompts) * n * 4, f"{name} prompts")
        rows = evaluate_prompts(world, judge, prompts, n, seed=args.seed, methods=clip_methods(langevin.steps),
                                langevin=langevin, progress=update)
        bar.close()
        print(f"\n{name} prompts ({len(prompts)} prompts x {n} samples):")
        print(markdown_table(rows, SHAPES_COLUMNS))
    return 0


# Worlds over the digits data, judged by the same SVM (tron.evaluation.evaluate_digits).
DIGITS_WORLDS = ("digits", "digits-cm")

ADAPTER_SPECS = [
    ("open_clip:ARCH:TAG | open_clip:ARCH:FILE", "f", "any open_clip CLIP; embedding size from ARCH"),
    ("torchvision:ARCH:FILE[#image_size=N]", "f", "a torchvision classifier; classes from the weights"),
    ("biggan:DIR[#truncation=T,z_clamp=C]", "G", "pytorch-pretrained-biggan; latent = z + class embedding"),
    ("consistency:DIR", "G", "diffusers UNet2DModel + CMStochasticIterativeScheduler, one step; latent = C*H*W"),
    ("torchscript:FILE#latent_dim=N", "G", "a TorchScript module z -> image"),
    ("[plugin:]module.path:factory[#key=value]", "G or f", "factory(**options) -> Generator, Encoder or nn.Module"),
]


def cmd_list(args) -> int:
    """Zoo worlds with G's latent size and f's embedding size, the registered checkpoint kinds,
    and the adapter specs for models from other libraries."""
    import inspect
    import json

    from . import adapters  # noqa: F401
    from .checkpoint import read_config
    from .encoders import ENCODERS, load_encoder
    from .generators import GENERATORS, load_generator
    from .world import ZOO_ROOT, _import_zoo_models, list_zoo

    _import_zoo_models()
    print("zoo worlds (G latent size d, f embedding size k):")
    for name in list_zoo():
        root = ZOO_ROOT / name
        g, f = load_generator(root / "generator"), load_encoder(root / "encoder")
        desc = json.loads((root / "world.json").read_text()).get("description", "")
        print(f"  zoo:{name:<11} G {read_config(root / 'generator')['kind']} (d={g.latent_dim}, image {tuple(g.image_shape)}), "
              f"f {read_config(root / 'encoder')['kind']} ({f.kind}, k={f.embed_dim})"
              + ("" if (root / "translator").is_dir() else ", no translator"))
        if desc:
            print(f"  {'':<15} {desc}")
    for title, registry in (("generators", GENERATORS), ("encoders", ENCODERS)):
        print(f"{title} (checkpoint kinds; sizes come from each checkpoint's config):")
        for kind in registry.names():
            cls = registry.get(kind)
            doc = (inspect.getdoc(cls) or "").splitlines()
            print(f"  {kind:<24} {cls.__module__}.{cls.__name__}" + (f": {doc[0]}" if doc else ""))
    print("adapter specs (--generator / --encoder):")
    for spec, part, what in ADAPTER_SPECS:
        print(f"  {spec:<46} {part:<6} {what}")
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
    p.add_argument("--text", dest="conditions", action="append", type=lambda v: ("text", v), metavar="PROMPT",
                   help="text prompt for a CLIP world (repeat for several)")
    p.add_argument("--image", dest="conditions", action="append", type=lambda v: ("image", v), metavar="FILE",
                   help="image file: sample semantic variations of it (repeat for several)")
    p.add_argument("--weights", type=_weights, help="compose all --text/--image into one energy with these weights, e.g. 1,-0.5")
    p.add_argument("--interpolate", type=_positive_int, metavar="N",
                   help="N conditions interpolated between exactly two --text/--image")
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
    p.add_argument("-n", type=_positive_int, help="samples per label (default 100) or per prompt (default 8)")
    p.add_argument("--prompts", choices=["full", "partial", "both"], default="both",
                   help="shapes world: the 210 full captions, 59 partial prompts, or both (default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--translator", help="translator directory to use instead of the world's")
    _add_langevin_args(p)
    p.set_defaults(func=cmd_eval)

    # Their options belong to the Ray entrypoints they hand over to (see main()).
    sub.add_parser("serve", add_help=False, help="serve sampling over HTTP with Ray Serve (tron serve --help)")
    sub.add_parser("watch", add_help=False,
                   help="retrain on a schedule: tron watch --every 6h [retrain options] (tron watch --help)")

    p = sub.add_parser("list", help="list zoo worlds, generators and encoders")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("demo", help="the main job on the embedded defaults: digit grids into --out")
    p.add_argument("--out", default="outputs", help="folder for the grids (default outputs/)")
    p.add_argument("-n", type=_positive_int, default=8, help="samples per digit (default 8)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_demo)
    return parser


def _hand_over(command: str, argv: list[str]) -> int:
    """`tron serve` and `tron watch` run the pipelines' entrypoints (which bring Ray and MLflow)."""
    if command == "serve":
        from pipelines.serve import main as entry
    else:
        from pipelines.retrain import main as entry

        if not any(a == "--every" or a.startswith("--every=") for a in argv) and not {"-h", "--help"} & set(argv):
            print("tron watch: error: give --every DURATION, e.g. --every 6h (see tron watch --help)", file=sys.stderr)
            return EXIT_USAGE
    try:
        return entry(argv)
    except TronError as exc:
        print(f"tron {command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] in (["serve"], ["watch"]):  # argparse.REMAINDER cannot pass leading options on
        return _hand_over(argv[0], argv[1:])
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
