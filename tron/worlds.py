"""`tron world create`: a world directory from a user's own G and f, so that every command that
takes a world (`tron sample`, `tron eval`, `tron serve`, the retrain config) works with them.

    tron world create DIR --generator SPEC --encoder SPEC [--translator DIR|models:/NAME@alias]
                          [--image-translator DIR|URI] [--langevin PRESET_OR_JSON] [--judge JSON]

G and f are adapter specs (`biggan:/models/biggan#truncation=0.4`, `open_clip:ViT-B-32:/w.safetensors`,
`efficientnet:lite0`, ...), zoo:NAME or tron checkpoint directories. A spec is recorded as it is,
with its fingerprint (a world refuses to load once the files behind it change); a tron checkpoint
directory is copied in. A translator directory is copied in, a registry URI recorded (the world
follows the registry); either must have been trained for exactly this G and f.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from .errors import CheckpointError, TronError


def _parser() -> argparse.ArgumentParser:
    from .cli import _Parser

    p = _Parser(prog="tron world", description="Make a world directory from specs.")
    sub = p.add_subparsers(dest="action", required=True, parser_class=_Parser, metavar="ACTION")
    c = sub.add_parser("create", help="write a world directory that refers to G, f and translators")
    c.add_argument("dir", help="the world directory to write (must not exist, or be empty)")
    c.add_argument("--generator", required=True, help="G: an adapter spec, zoo:NAME or a checkpoint directory")
    c.add_argument("--encoder", required=True, help="f: an adapter spec, zoo:NAME or a checkpoint directory")
    c.add_argument("--translator", help="the translator: a directory (copied in) or models:/NAME@alias (followed)")
    c.add_argument("--image-translator", help="a translator for image conditions (trained without text noise)")
    c.add_argument("--langevin", help="sampling defaults: a preset (reference) or a JSON object of Langevin settings")
    c.add_argument("--translator-std-scale", type=float, default=1.0, help="scale of the mixture's std when drawing z0")
    c.add_argument("--judge", help='the measuring instrument as JSON, '
                                   'e.g. {"kind": "imagenet-classifier", "encoder": "efficientnet:lite2"}')
    c.add_argument("--name", help="the world's name (default: the directory's)")
    c.add_argument("--description", default="")
    c.add_argument("--allow-pickle", action="store_true", help="let G and f read pickled weights files you trust")
    return p


def create(directory: str | Path, generator: str, encoder: str, translator: str | None = None,
           image_translator: str | None = None, langevin: str | dict | None = None, translator_std_scale: float = 1.0,
           judge: dict | None = None, name: str | None = None, description: str = "", allow_pickle: bool = False):
    """Write the world directory; returns its WorldConfig."""
    from .components import component_fingerprint, load_encoder_spec, load_generator_spec, parse_adapter_spec, resolve_part
    from .langevin import LangevinConfig
    from .presets import resolve
    from .translator import load_translator
    from .uris import resolve_local_dir, uri_scheme
    from .world import DEFAULT, World, WorldConfig, check_translator_fits

    out = Path(directory)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise TronError(f"{out} exists and is not empty: give a new directory")
    g = load_generator_spec(generator, allow_pickle=allow_pickle)  # fail here, in one line, on bad specs
    f = load_encoder_spec(encoder, allow_pickle=allow_pickle)
    fps = {"generator": component_fingerprint(generator, "generator"), "encoder": component_fingerprint(encoder, "encoder")}
    parts: dict[str, str] = {}
    staged: list[tuple[Path, str]] = []  # (source directory, name in the world)
    for part, spec in (("generator", generator), ("encoder", encoder)):
        inner = resolve_part(spec, part)
        if parse_adapter_spec(inner) is None:  # a tron checkpoint directory: copy it in
            staged.append((Path(inner), part))
            parts[part] = part
        else:
            parts[part] = inner
    translators: dict[str, str] = {}
    probe = World(name or out.name, g, f, {})
    for kind, spec in ((DEFAULT, translator), ("image", image_translator)):
        if spec is None:
            continue
        local = resolve_local_dir(spec)
        t = load_translator(local)
        check_translator_fits(t, fps, spec)
        probe.translators = {kind: t}
        probe.sampler(None if kind == DEFAULT else kind)  # the dimensions fit G and f's space
        if uri_scheme(spec) is None:
            staged.append((local, "translator" if kind == DEFAULT else "translator-image"))
            translators[kind] = staged[-1][1]
        else:
            translators[kind] = spec
    if not translators:
        translators = {DEFAULT: "translator"}  # where train_translator.py's export can be put later
    config = WorldConfig(
        name=name or out.name, description=description, generator=parts["generator"], encoder=parts["encoder"],
        translators=translators, langevin=resolve(langevin, LangevinConfig(), g), translator_std_scale=translator_std_scale,
        judge=judge, fingerprints=fps,
    )
    out.mkdir(parents=True, exist_ok=True)
    for source, target in staged:
        shutil.copytree(source, out / target)
    config.save(out)
    return config


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    judge = None
    if args.judge:
        try:
            judge = json.loads(args.judge)
        except json.JSONDecodeError as exc:
            raise TronError(f"--judge is not JSON: {exc}") from None
    try:
        config = create(args.dir, args.generator, args.encoder, args.translator, args.image_translator, args.langevin,
                        args.translator_std_scale, judge, args.name, args.description, args.allow_pickle)
    except (ValueError, CheckpointError) as exc:
        raise TronError(str(exc)) from None
    print(f"wrote world {config.name!r} to {args.dir}: G {config.generator} ({config.fingerprints['generator']}), "
          f"f {config.encoder} ({config.fingerprints['encoder']}), translators {config.translators}")
    print(f"use it: tron sample {args.dir} ...; tron serve --world {args.dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
