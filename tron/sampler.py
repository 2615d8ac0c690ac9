"""The TR0N sampler: translator -> Langevin dynamics -> decode, batched over many conditions.

    z0 ~ q(z | c)            (or z0 ~ p(z) for the random-init baseline)
    z_T = SGLD on E_t(z, c) = mean over the step's views v of energy(f(v(G(z))), c)
    x = G(z_T)

`Sampler.run` is the one batched chain runner: a batch is a list of `Chains` groups (a request, or
a slice of one), each drawing its translator samples and noise from its own generator, with its
own step count and deadline, so a group's samples do not depend on what it is batched with.
`sample` (the CLI, the evaluation, the benchmarks) and the server both go through it.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from .augment import AugmentConfig, augment
from .baselines import best_of_m
from .encoders import MAIN, Encoder
from .errors import ConditionError
from .generators import Generator
from .langevin import GroupNoise, LangevinConfig, langevin_dynamics
from .priors import PriorConfig
from .translator import Translator

INITS = ("translator", "prior")


@dataclass
class SampleResult:
    images: torch.Tensor  # (N, C, H, W) in [0, 1]
    energies: torch.Tensor  # (N,) final energy of each sample (plain: no augmented views)
    latents: torch.Tensor  # (N, d) final latents z_T
    condition_index: torch.Tensor  # (N,) row of c that each sample answers


@dataclass
class Chains:
    """A group of chains that share one random stream: one row of c per chain."""

    c: torch.Tensor  # (n, k)
    rng: torch.Generator
    steps: int
    deadline: float | None = None  # a time.perf_counter() value; past it the group is dropped
    component: torch.Tensor | None = None  # (n,) mixture components to start from (default: drawn)
    # Draws this group's z0 (default: the sampler's): e.g. a text translator's group and an image
    # translator's share one Langevin batch, as both live in the sampler's energy space.
    translator: Translator | None = None


class Sampler:
    def __init__(self, generator: Generator, encoder: Encoder, translator: Translator | None = None,
                 translator_std_scale: float = 1.0, space: str = MAIN) -> None:
        cond_dim = encoder.space_dim(space)
        if translator is not None:
            if translator.config.latent_dim != generator.latent_dim:
                raise ConditionError(f"translator latent_dim {translator.config.latent_dim} != generator latent_dim {generator.latent_dim}")
            if translator.config.cond_dim != cond_dim:
                raise ConditionError(f"translator cond_dim {translator.config.cond_dim} != encoder {space} dim {cond_dim}")
        self.generator, self.encoder, self.translator, self.space = generator, encoder, translator, space
        # Scales the mixture's shared std when drawing z0: below 1 starts chains nearer the
        # component means, for translators whose learned std is broad (a world.json setting).
        self.translator_std_scale = translator_std_scale

    @property
    def device(self) -> torch.device:
        return self.generator.device

    # -- energies ------------------------------------------------------------------------------

    def image_energy(self, x: torch.Tensor, c: torch.Tensor, views: AugmentConfig | None = None, step: int = 0) -> torch.Tensor:
        """energy(f(v(x)), c) averaged over the step's views v. (B, C, H, W), (B, k) -> (B,)"""
        if views is None or views.num == 0:
            return self.encoder.energy(x, c, self.space)
        v = augment(x, views, step)  # (V, B, C, H, W)
        n, b = v.shape[:2]
        e = self.encoder.energy(v.flatten(0, 1), c.repeat(n, 1), self.space)  # (V * B,)
        return e.view(n, b).mean(0)

    def energy_fn(self, c: torch.Tensor, views: AugmentConfig | None = None):
        """E_t(z) for the chains `rows` of conditions c (B, k): the Langevin energy."""
        return lambda z, rows, t: self.image_energy(self.generator.decode(z), c[rows], views, t)

    # -- chains --------------------------------------------------------------------------------

    def initial_latents(self, c: torch.Tensor, init: str, rng: torch.Generator, prior: PriorConfig | None,
                        component: torch.Tensor | None = None) -> torch.Tensor:
        if init == "translator":
            if self.translator is None:
                raise ConditionError("init='translator' needs a translator")
            return self.translator.sample(c, rng=rng, std_scale=self.translator_std_scale, component=component)
        if init == "prior":
            return self.generator.sample_latents(len(c), rng, prior)
        raise ValueError(f"init must be one of {INITS}, got {init!r}")

    @torch.no_grad()
    def best_initial_latents(self, c: torch.Tensor, init: str, rng: torch.Generator, prior: PriorConfig | None,
                             candidates: int = 1, component: torch.Tensor | None = None,
                             temperature: float = 0.0) -> torch.Tensor:
        """z0 for each row of c, chosen among `candidates` draws from the initial distribution by
        their plain energy (the translator proposes, f ranks: a translator's broad mixture puts some
        draws on the wrong mode, and f tells them apart before any gradient step): the lowest, or
        with temperature > 0 one drawn with probability softmax(-E / temperature), which keeps
        the draws' spread over what f does not care about. 1: one draw, unranked."""
        return self.initial_latents_of([Chains(c, rng, 0, component=component)], init, prior, candidates, temperature)

    @torch.no_grad()
    def initial_latents_of(self, groups: Sequence[Chains], init: str, prior: PriorConfig | None, candidates: int = 1,
                           temperature: float = 0.0) -> torch.Tensor:
        """z0 of every group's chains (best_initial_latents), each drawn from the group's translator
        and stream, the candidates of all groups ranked together: one G+f pass per candidate for the
        whole batch. A group's z0 is the same as it would be alone."""
        device = self.device
        c = torch.cat([g.c.to(device) for g in groups])  # (N, k)
        draw = lambda: torch.cat([self.drawing_from(g.translator).initial_latents(  # noqa: E731
            g.c.to(device), init, g.rng, prior, g.component) for g in groups])
        if candidates == 1:
            return draw()
        z, _ = best_of_m(self.energy_fn(c), draw, candidates, temperature=temperature, rng=[g.rng for g in groups],
                         sizes=[len(g.c) for g in groups])
        return z

    def drawing_from(self, translator: Translator | None) -> Sampler:
        """This sampler with z0 drawn from `translator` instead (same G, f and space; None: self)."""
        if translator is None or translator is self.translator:
            return self
        return Sampler(self.generator, self.encoder, translator, self.translator_std_scale, self.space)

    def run(self, groups: Sequence[Chains], langevin: LangevinConfig, init: str = "translator",
            prior: PriorConfig | None = None, timings: dict[str, float] | None = None) -> list[SampleResult | None]:
        """Run every group's chains as ONE batch (one G/f pass per step), each group's z0 drawn from
        its own translator; a group whose deadline passes leaves the batch and gets None. `timings`,
        if given, receives the seconds of each stage: "init" (z0 draws and their ranking),
        "langevin" (the steps), "decode" (the final G and energy)."""
        device = self.device
        t0 = time.perf_counter()
        bounds = [0]
        for g in groups:
            bounds.append(bounds[-1] + len(g.c))
        c = torch.cat([g.c.to(device) for g in groups])  # (N, k)
        z0 = self.initial_latents_of(groups, init, prior, langevin.candidates, langevin.candidate_temperature)  # (N, d)
        t1 = time.perf_counter()
        steps = torch.cat([torch.full((len(g.c),), int(g.steps)) for g in groups])
        expired = [False] * len(groups)
        group_of = torch.repeat_interleave(torch.arange(len(groups)), torch.tensor([len(g.c) for g in groups]))

        def active(t: int):
            if all(g.deadline is None for g in groups):
                return None
            now = time.perf_counter()
            for i, g in enumerate(groups):
                expired[i] = expired[i] or (g.steps > t and g.deadline is not None and now > g.deadline)
            return ~torch.tensor(expired)[group_of]

        noise = GroupNoise(bounds, [g.rng for g in groups], z0.shape[1], device, z0.dtype)
        z = langevin_dynamics(z0, self.energy_fn(c, langevin.augment), langevin, steps=steps, noise=noise,
                              active=active, project=self.generator.project)
        t2 = time.perf_counter()
        with torch.no_grad():
            x = self.generator.decode(z)
            e = self.encoder.energy(x, c, self.space)
        if timings is not None:
            timings.update(init=t1 - t0, langevin=t2 - t1, decode=time.perf_counter() - t2)
        return [None if gone else SampleResult(x[a:b].cpu(), e[a:b].cpu(), z[a:b].cpu(), torch.zeros(b - a, dtype=torch.long))
                for a, b, gone in zip(bounds, bounds[1:], expired)]

    def _rows(self, c: torch.Tensor, num_per_condition: int) -> tuple[torch.Tensor, torch.Tensor]:
        if num_per_condition < 1:
            raise ConditionError(f"number of samples must be >= 1, got {num_per_condition}")
        c = self.encoder.check_condition(c, self.space).to(self.device)
        return c, torch.arange(len(c), device=self.device).repeat_interleave(num_per_condition)

    def sample(
        self,
        c: torch.Tensor,
        num_per_condition: int = 1,
        langevin: LangevinConfig | None = None,
        seed: int = 0,
        init: str = "translator",
        prior: PriorConfig | None = None,
        batch_size: int = 64,
        progress: Callable[[int], None] | None = None,
    ) -> SampleResult:
        """Draw `num_per_condition` samples for each row of c (M, k); rows of the result are
        grouped by condition. Batches of `batch_size` chains run one after the other on one stream."""
        langevin = langevin or LangevinConfig()
        c, index = self._rows(c, num_per_condition)
        rng = torch.Generator(device=self.device).manual_seed(int(seed))
        parts = []
        for start in range(0, len(index), batch_size):
            cb = c[index[start:start + batch_size]]
            (res,) = self.run([Chains(cb, rng, langevin.steps)], langevin, init, prior)
            parts.append(res)
            if progress is not None:
                progress(len(cb))
        return SampleResult(torch.cat([p.images for p in parts]), torch.cat([p.energies for p in parts]),
                            torch.cat([p.latents for p in parts]), index.cpu())

    def sample_path(self, path: torch.Tensor, num_per_condition: int = 1, langevin: LangevinConfig | None = None,
                    seed: int = 0, init: str = "translator", prior: PriorConfig | None = None) -> SampleResult:
        """Samples along a path of conditions (M, k) (an interpolation) that change smoothly from
        frame to frame: sample j of every frame starts from the same mixture component (drawn for
        the first frame) and the same noise, and sees the same Langevin noise, so its frames differ
        only by their condition. Rows are grouped by frame, as in `sample`."""
        # One draw per chain: ranking candidates per frame would pick different modes for neighbouring frames.
        langevin = (langevin or LangevinConfig()).with_overrides(candidates=1)
        c, index = self._rows(path, num_per_condition)
        component = None
        if init == "translator" and self.translator is not None and self.translator.config.head == "gmm":
            first = torch.Generator(device=self.device).manual_seed(int(seed))
            probs = torch.softmax(self.translator(c[:1].expand(num_per_condition, -1))["logits"], dim=-1)
            component = torch.multinomial(probs, 1, generator=first).squeeze(1)  # (n,)
        groups = [Chains(c[m:m + 1].expand(num_per_condition, -1), torch.Generator(device=self.device).manual_seed(int(seed)),
                         langevin.steps, component=component) for m in range(len(c))]
        parts = self.run(groups, langevin, init, prior)
        return SampleResult(torch.cat([p.images for p in parts]), torch.cat([p.energies for p in parts]),
                            torch.cat([p.latents for p in parts]), index.cpu())

    @torch.no_grad()
    def best_of_n(self, c: torch.Tensor, num_per_condition: int, candidates: int, seed: int = 0,
                  views: AugmentConfig | None = None, prior: PriorConfig | None = None, batch_size: int = 256,
                  progress: Callable[[int], None] | None = None) -> SampleResult:
        """Baseline: `candidates` prior samples per requested sample, keeping the lowest energy
        (under the given views, drawn for candidate i as for Langevin step i)."""
        c, index = self._rows(c, num_per_condition)
        g = self.generator
        rng = torch.Generator(device=self.device).manual_seed(int(seed))
        parts = []
        for start in range(0, len(index), batch_size):
            cb = c[index[start:start + batch_size]]
            propose = (lambda n: lambda: g.sample_latents(n, rng, prior))(len(cb))
            z, _ = best_of_m(self.energy_fn(cb, views), propose, candidates)
            x = g.decode(z)
            parts.append(SampleResult(x.cpu(), self.encoder.energy(x, cb, self.space).cpu(), z.cpu(), index[:0]))
            if progress is not None:
                progress(len(cb))
        return SampleResult(torch.cat([p.images for p in parts]), torch.cat([p.energies for p in parts]),
                            torch.cat([p.latents for p in parts]), index.cpu())
