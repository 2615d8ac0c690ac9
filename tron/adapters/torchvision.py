"""A torchvision classifier as f: `torchvision:ARCH:/path/to/weights.pth`.

The network is `torchvision.models.get_model(ARCH, weights=None, num_classes=K)` (K read from the
weights' last layer) with the local weights loaded into it (safetensors, or a torch file read
with weights_only=True). The energy applies the classifier's preprocessing differentiably:
grey images are repeated to three channels, resized to `image_size` and normalised with the
ImageNet mean and std that torchvision's classifiers expect.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from ..encoders import ClassifierEncoder
from ..errors import CheckpointError, one_line
from ..files import hash_file
from ..specs import AdapterSpec, Scheme
from .util import load_strict, load_weights_file

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class TorchvisionClassifier(ClassifierEncoder):
    """A torchvision classifier as f, with its resize-and-normalise preprocessing inside."""

    def __init__(self, arch: str, num_classes: int = 1000, image_size: int = 224,
                 mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
                 class_names: Sequence[str] | None = None) -> None:
        import torchvision

        super().__init__(arch=arch, num_classes=int(num_classes), image_size=int(image_size), mean=list(mean),
                         std=list(std), class_names=list(class_names) if class_names else None)
        if arch not in torchvision.models.list_models():
            raise CheckpointError(f"torchvision has no model {arch!r} (see torchvision.models.list_models())")
        self.model = torchvision.models.get_model(arch, weights=None, num_classes=int(num_classes))
        self.num_classes = int(num_classes)
        self.image_size = int(image_size)
        self.class_names = self.config["class_names"]
        self.register_buffer("image_mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("image_std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1 or 3, H, W) in [0, 1] -> (B, 3, S, S) normalised, differentiably."""
        if x.dim() != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"{self.config['arch']} expects (B, 1 or 3, H, W) images, got {tuple(x.shape)}")
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if x.shape[-2:] != (self.image_size, self.image_size):
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False, antialias=True)
        return (x - self.image_mean) / self.image_std

    def logits(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, K)
        return self.model(self.preprocess(x))


def _num_classes(state: dict[str, torch.Tensor]) -> int:
    """The output size of the last linear layer in the state dict."""
    matrices = [v for k, v in state.items() if k.endswith("weight") and v.dim() == 2]
    if not matrices:
        raise CheckpointError("cannot find a final linear layer in the weights to read the number of classes from")
    return int(matrices[-1].shape[0])


def load_spec(spec: AdapterSpec, allow_pickle: bool = False, part: str = "encoder") -> TorchvisionClassifier:
    """`torchvision:ARCH:FILE[#image_size=N]`."""
    return load_torchvision(*spec.args, allow_pickle=allow_pickle, **spec.options)


def load_torchvision(arch: str, path: str, image_size: int = 224, allow_pickle: bool = False) -> TorchvisionClassifier:
    state = load_weights_file(path, allow_pickle)
    model = TorchvisionClassifier(arch, num_classes=_num_classes(state), image_size=image_size)
    try:
        load_strict(model.model, state, path)
    except RuntimeError as exc:  # shape mismatches: the last line names one
        raise CheckpointError(f"weights in {path} do not fit torchvision {arch}: {one_line(exc, last=True)}") from None
    model.source = str(Path(path))
    return model


SCHEME = Scheme("torchvision", "encoder", "torchvision:ARCH:FILE[#image_size=N]", "a torchvision classifier; classes from the weights",
                (2,), ("image_size",), load_spec, lambda s: hash_file(s.args[-1], "weights"), hash_names=True)
