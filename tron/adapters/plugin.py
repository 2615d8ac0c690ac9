"""Anything else as G: a plugin factory `module:factory`, or a TorchScript file.

A plugin is user code: `module.path:factory` is imported and called with the spec's options
(`factory(**options)`); it returns a `tron.generators.Generator`, or any nn.Module with
`decode(z)` (or `forward(z)`) and a `latent_dim` attribute, which is then wrapped. That is how a
StyleGAN2 generator the user wraps comes in. A plugin may also return a `tron.encoders.Encoder`
to serve as f.

A TorchScript file (`torchscript:FILE`) is loaded with torch.jit.load: its code is TorchScript,
not Python pickles. Its latent size comes from a `latent_dim` attribute or the `latent_dim` option.
"""
from __future__ import annotations

import importlib
import importlib.util
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..captioners import Captioner
from ..encoders import Encoder
from ..errors import CheckpointError, one_line
from ..files import hash_file
from ..generators import Generator
from ..specs import PLUGIN, PLUGIN_RE, AdapterSpec, Scheme


class ModuleGenerator(Generator):
    """Wraps an nn.Module (or ScriptModule) mapping z (B, d) to images in [0, 1] as a Generator.
    `output_range` (-1, 1) maps tanh outputs to [0, 1]."""

    def __init__(self, module: nn.Module, latent_dim: int, output_range: tuple[float, float] = (0.0, 1.0)) -> None:
        super().__init__(latent_dim=int(latent_dim), output_range=list(output_range))
        self.module = module
        # Callers read the device from the first parameter; a parameter-free module still has one.
        self.device_anchor = nn.Parameter(torch.zeros(0), requires_grad=False)
        self.latent_dim = int(latent_dim)
        self.output_range = tuple(float(v) for v in output_range)
        with torch.no_grad():
            probe = self._raw(torch.zeros(1, self.latent_dim, device=self._device()))
        if probe.dim() != 4:
            raise CheckpointError(f"the wrapped generator returned shape {tuple(probe.shape)}; expected (B, C, H, W)")
        self.image_shape = tuple(int(s) for s in probe.shape[1:])

    def _device(self) -> torch.device:
        for p in self.module.parameters():
            return p.device
        return torch.device("cpu")

    def _raw(self, z: torch.Tensor) -> torch.Tensor:
        decode = getattr(self.module, "decode", None)
        return decode(z) if decode is not None else self.module(z)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        lo, hi = self.output_range
        return ((self._raw(z) - lo) / (hi - lo)).clamp(0, 1)


def _latent_dim(module: nn.Module, options: dict[str, Any], source: str) -> int:
    value = options.get("latent_dim", getattr(module, "latent_dim", None))
    if value is None:
        raise CheckpointError(f"{source}: give the latent size with #latent_dim=N (the model has no latent_dim attribute)")
    return int(value)


def _output_range(options: dict[str, Any]) -> tuple[float, float]:
    value = str(options.get("output_range", "unit"))
    if value not in ("unit", "tanh"):
        raise CheckpointError(f"output_range is 'unit' (images in [0, 1]) or 'tanh' (in [-1, 1]), got {value!r}")
    return (-1.0, 1.0) if value == "tanh" else (0.0, 1.0)


def call_plugin(target: str, options: dict[str, Any]) -> Any:
    """Import `module:factory` and call it with the options."""
    if not PLUGIN_RE.match(target):
        raise CheckpointError(f"a plugin is named module.path:factory, got {target!r}")
    module_name, _, attr = target.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise CheckpointError(f"cannot import plugin module {module_name!r}: {exc}") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise CheckpointError(f"plugin module {module_name!r} has no {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise CheckpointError(f"plugin {target} is not callable")
    return obj(**options)


def load_plugin_generator(target: str, options: dict[str, Any]) -> Generator:
    options = dict(options)
    latent = {k: options.pop(k) for k in ("latent_dim", "output_range") if k in options}
    made = call_plugin(target, options)
    if isinstance(made, Generator):
        return made
    if isinstance(made, nn.Module) and (hasattr(made, "decode") or callable(made)):
        return ModuleGenerator(made, _latent_dim(made, latent, target), _output_range(latent))
    raise CheckpointError(f"plugin {target} returned {type(made).__name__}; expected a Generator or an nn.Module with decode(z)")


def load_plugin_encoder(target: str, options: dict[str, Any]) -> Encoder:
    made = call_plugin(target, dict(options))
    if not isinstance(made, Encoder):
        raise CheckpointError(f"plugin {target} returned {type(made).__name__}; an encoder plugin must return a tron.encoders.Encoder")
    return made


def load_plugin_captioner(target: str, options: dict[str, Any]) -> Captioner:
    made = call_plugin(target, dict(options))
    if not isinstance(made, Captioner):
        raise CheckpointError(f"plugin {target} returned {type(made).__name__}; a captioner plugin must return a "
                              "tron.captioners.Captioner")
    return made


def load_plugin_spec(spec: AdapterSpec, allow_pickle: bool = False, part: str = "generator", **context: Any):
    """`[plugin:]module.path:factory[#options]`."""
    loader = {"generator": load_plugin_generator, "encoder": load_plugin_encoder, "captioner": load_plugin_captioner}[part]
    return loader(spec.args[0], spec.options)


def load_torchscript_spec(spec: AdapterSpec, allow_pickle: bool = False, part: str = "generator") -> Generator:
    """`torchscript:FILE#latent_dim=N`."""
    return load_torchscript(spec.args[0], spec.options)


def load_torchscript(path: str, options: dict[str, Any]) -> Generator:
    path_ = Path(path)
    if not path_.is_file():
        raise CheckpointError(f"TorchScript file not found: {path}")
    try:
        with warnings.catch_warnings():  # torch 2.10+ deprecates TorchScript; a user's file is still read
            warnings.simplefilter("ignore", FutureWarning)
            module = torch.jit.load(str(path_), map_location="cpu")
    except (RuntimeError, ValueError) as exc:
        raise CheckpointError(f"{path} is not a TorchScript file: {one_line(exc)}") from None
    model = ModuleGenerator(module, _latent_dim(module, options, path), _output_range(options))
    model.source = str(path_)
    return model


def module_hash(spec: AdapterSpec) -> dict[str, str]:
    """The plugin's module file, by content (its factory's code identifies the model)."""
    module = spec.args[0].partition(":")[0]
    found = importlib.util.find_spec(module.split(".")[0]) and importlib.util.find_spec(module)
    return hash_file(found.origin, "module") if found is not None and found.origin else {}


TORCHSCRIPT = Scheme("torchscript", "generator", "torchscript:FILE#latent_dim=N", "a TorchScript module z -> image", (1,),
                     ("latent_dim", "output_range"), load_torchscript_spec, lambda s: hash_file(s.args[0], "module"))
PLUGIN_SCHEME = Scheme(PLUGIN, None, "[plugin:]module.path:factory[#key=value]",
                       "factory(**options) -> Generator, Encoder, Captioner or nn.Module", (1,), None,
                       load_plugin_spec, module_hash, hash_names=True)
