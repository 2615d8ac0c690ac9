"""Helpers shared by the adapters: optional packages, and weights files from other libraries."""
from __future__ import annotations

import importlib.util
import pickle
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from ..errors import CheckpointError, MissingDependencyError, one_line


def need_package(module: str, what: str, pip_name: str | None = None, extra: str = "adapters") -> None:
    """Raise a one-line error naming the pip package when `module` cannot be imported."""
    if importlib.util.find_spec(module) is None:
        raise MissingDependencyError(f"{what} needs the {module!r} package: pip install '{pip_name or module}' "
                                     f"(or pip install 'tron[{extra}]')")


def load_weights_file(path, allow_pickle: bool = False, key: str | None = None) -> dict:
    """A state dict from a local weights file: safetensors, or a torch file read with
    `torch.load(weights_only=True)` (tensors and plain containers only, never arbitrary objects)
    unless allow_pickle. Checkpoints that wrap the state dict under "state_dict" or "model" work."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"{path} is not a readable safetensors file: {exc}") from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=not allow_pickle)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(f"{path} holds pickled objects beyond plain tensors ({one_line(exc, limit=160)}); "
                              "pass --trust-pickle / allow_pickle=True only if you trust its source") from None
    except (RuntimeError, OSError, EOFError, ValueError) as exc:
        raise CheckpointError(f"{path} is not a readable torch weights file: {one_line(exc)}") from None
    if key is not None:
        if not isinstance(state, dict) or key not in state:
            raise CheckpointError(f"{path} has no {key!r} entry")
        state = state[key]
    for wrapper in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} does not hold a state dict (a mapping of names to tensors)")
    return state


def load_strict(module, state: dict, source) -> None:
    """load_state_dict(strict=True) with a one-line error naming the file."""
    result = module.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise CheckpointError(f"weights in {source} do not fit the model: missing {result.missing_keys[:5]}, "
                              f"unexpected {result.unexpected_keys[:5]}")
