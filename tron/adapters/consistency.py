"""A one-step consistency model as G, through diffusers' own classes.

diffusers' `ConsistencyModelPipeline` is a `UNet2DModel` plus a `CMStochasticIterativeScheduler`;
with one inference step it draws x_T = sigma_max * z from unit-variance noise z and returns

    x_0 = clamp(c_skip(sigma_max) * x_T + c_out(sigma_max) * F(x_T / sqrt(sigma_max^2 + sigma_data^2), t(sigma_max)), -1, 1)

`ConsistencyGenerator.decode(z)` is exactly that step, written with the scheduler's own scalings so
that it is differentiable in z and free of the scheduler's step counter; the latent is the
flattened noise image (d = C * H * W) and the output is mapped from [-1, 1] to [0, 1] as the
pipeline's post-processing does.

Two ways to load: a diffusers directory (`unet/` + `scheduler/`, as `save_pretrained` writes
them; `consistency:DIR` on the command line), or a tron checkpoint (`config.json` holding both
diffusers configs + `model.safetensors`), which is how the zoo ships its digits model.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError, one_line
from ..files import hash_tree
from ..generators import Generator
from ..priors import PriorConfig
from ..specs import AdapterSpec, Scheme
from .util import need_package


class ConsistencyGenerator(Generator):
    """G(z) = the one-step sample of a consistency model from unit-variance noise z (B, C*H*W)."""

    default_prior = PriorConfig()  # the model was trained from N(0, sigma_max^2 I) noise

    def __init__(self, unet_config: dict[str, Any], scheduler_config: dict[str, Any] | None = None) -> None:
        need_package("diffusers", "a consistency model")
        from diffusers import CMStochasticIterativeScheduler, UNet2DModel

        super().__init__(unet_config=dict(unet_config), scheduler_config=dict(scheduler_config or {}))
        self.unet = UNet2DModel.from_config(self.config["unet_config"])
        self.scheduler = CMStochasticIterativeScheduler.from_config(self.config["scheduler_config"])
        size = self.unet.config.sample_size
        h, w = (size, size) if isinstance(size, int) else tuple(size)
        self.image_shape = (int(self.unet.config.out_channels), int(h), int(w))
        self.noise_shape = (int(self.unet.config.in_channels), int(h), int(w))
        self.latent_dim = math.prod(self.noise_shape)
        if self.unet.config.num_class_embeds is not None:
            raise CheckpointError("class-conditional consistency models are not supported as G: use an unconditional UNet2DModel")

    def denoise(self, x: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
        """The consistency function f(x, sigma) in [-1, 1] units: (B, C, H, W) -> (B, C, H, W).
        sigma is a float or (B,) tensor; used by decode and by consistency training."""
        cfg = self.scheduler.config
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
        if sigma.dim() == 0:
            sigma = sigma.expand(len(x))
        c_skip, c_out = self.scheduler.get_scalings_for_boundary_condition(sigma)
        c_in = 1.0 / (sigma**2 + cfg.sigma_data**2).sqrt()
        t = 1000 * 0.25 * torch.log(sigma + 1e-44)  # the scheduler's sigma_to_t
        out = self.unet(x * c_in.view(-1, 1, 1, 1), t).sample
        return c_skip.view(-1, 1, 1, 1) * x + c_out.view(-1, 1, 1, 1) * out

    def decode(self, z: torch.Tensor) -> torch.Tensor:  # (B, d) -> (B, C, H, W) in [0, 1]
        sigma = float(self.scheduler.config.sigma_max)  # the scheduler's init_noise_sigma
        x = self.denoise(z.view(-1, *self.noise_shape) * sigma, sigma)
        if self.scheduler.config.clip_denoised:
            x = x.clamp(-1, 1)
        return (x / 2 + 0.5).clamp(0, 1)


def load_spec(spec: AdapterSpec, allow_pickle: bool = False, part: str = "generator") -> ConsistencyGenerator:
    """`consistency:DIR`."""
    return load_consistency_pretrained(spec.args[0], allow_pickle=allow_pickle)


def load_consistency_pretrained(directory: str | os.PathLike, allow_pickle: bool = False) -> ConsistencyGenerator:
    """A diffusers directory (unet/ and scheduler/, as `save_pretrained` writes them) as G.

    Weights load from safetensors only, unless allow_pickle (a `.bin` file is a pickle)."""
    need_package("diffusers", "a consistency model")
    from diffusers import CMStochasticIterativeScheduler, UNet2DModel

    directory = Path(directory)
    if not (directory / "unet" / "config.json").is_file():
        raise CheckpointError(f"{directory} is not a diffusers consistency model directory (no unet/config.json)")
    if not allow_pickle and not (directory / "unet" / "diffusion_pytorch_model.safetensors").is_file():
        raise CheckpointError(f"{directory}/unet has no diffusion_pytorch_model.safetensors; a .bin file is a pickle: "
                              "convert it, or pass --trust-pickle if you trust its source")
    try:
        unet = UNet2DModel.from_pretrained(directory, subfolder="unet", use_safetensors=not allow_pickle,
                                           low_cpu_mem_usage=False)
        if (directory / "scheduler").is_dir():
            scheduler_config = dict(CMStochasticIterativeScheduler.load_config(directory, subfolder="scheduler"))
        else:
            scheduler_config = {}
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot load the consistency model in {directory}: {one_line(exc)}") from None
    scheduler_config = {k: v for k, v in scheduler_config.items() if not k.startswith("_")}
    unet_config = {k: v for k, v in dict(unet.config).items() if not k.startswith("_")}
    model = ConsistencyGenerator(unet_config, scheduler_config)
    model.unet.load_state_dict(unet.state_dict())
    model.source = str(directory)
    return model


SCHEME = Scheme("consistency", "generator", "consistency:DIR",
                "diffusers UNet2DModel + CMStochasticIterativeScheduler, one step; latent = C*H*W", (1,), (),
                load_spec, lambda s: hash_tree(s.args[0]))
