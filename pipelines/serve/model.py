"""The model a sampler replica holds (no Ray here): G, f and the translators of one world, the
conditions of requests, and their batched sampling through `tron.sampler.Sampler.run`.

Batching: the jobs of one batch run as ONE Langevin chain batch per encoder space, whatever their
kind of condition: their condition rows are concatenated so every step is one G/f forward and
backward pass, and each job's z0 comes from its kind's translator (a world with a text translator
of its own draws a text job's z0 from it, and runs it with the image jobs that draw from theirs).
Only conditions of different spaces (a classifier's labels and its image features) run apart. A job
with fewer `steps` leaves the batch's active rows when its steps are done. Seeds: every job draws
from its own torch.Generator seeded with its `seed`, in the same order as `Sampler.sample`, so a
job's images depend only on (model version, condition, num_samples, steps, seed): not on which
other jobs shared its batch.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import torch

from tron import conditions
from tron.checkpoint import fingerprint
from tron.conditions import space_of
from tron.encoders import MAIN
from tron.errors import CheckpointError, ConditionError, TronError
from tron.images import to_uint8
from tron.sampler import Chains, Sampler
from tron.translator import load_translator
from tron.world import check_translator_fits, load_world, missing_fingerprints, translator_location
from tron.world_config import DEFAULT, WorldConfig, locate_world

from .config import ServeConfig
from .promotion import Reload, alias_version, fetch_translator, registry_reference


@dataclass
class Job:
    """One validated request as the sampler deployment receives it."""

    kind: str  # "label", "text", "image" or "prompts"
    value: Any  # int | str | (H, W, 3) uint8 array | [(kind, value, weight), ...]
    num_samples: int = 1
    steps: int | None = None  # None: the world's default
    seed: int = 0
    timeout_s: float | None = None  # what is left of the request's time when the ingress sends it


def request_kinds(encoder) -> list[str]:
    """The request fields an encoder can answer: its condition kinds, plus weighted prompts."""
    takes = encoder.condition_kinds
    kinds = ["label"] if "label" in takes else []
    kinds += ["text", "prompts"] if "text" in takes else []
    kinds += ["image"] if "image" in takes else []
    if "image" in takes and "prompts" not in kinds:
        kinds.append("prompts")
    return kinds


def wrong_kind_message(model: dict, kind: str) -> str:
    """For a request whose kind of condition the model does not take; `model` is its description."""
    takes = [k for k in model["conditions"] if k != "prompts"]
    if takes == ["label"]:
        what = f"labels (0..{len(model['labels']) - 1})" if model.get("labels") else "labels"
    else:
        what = " or ".join(f"{k}s" if k != "text" else k for k in takes)
        what += " or weighted prompts" if "prompts" in model["conditions"] else ""
    return f"this model ({model['name']}) takes {what}, not {kind}; see GET /v1/model"


def image_tensor(image):
    """(H, W, 3) uint8 -> (1, 3, H, W) float in [0, 1]."""
    return torch.from_numpy(image).permute(2, 0, 1).unsqueeze(0).float() / 255


class ServedModel:
    """G, f and the translators of one world, with the batched sampling the server needs."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        world_path = locate_world(config.world)
        if config.translator:
            translator_dir, source = fetch_translator(config.translator)
        else:
            translator_dir = translator_location(world_path, WorldConfig.load(world_path).translators[DEFAULT])
            source = {"source": f"{config.world} (bundled)"}
        self.world = load_world(config.world, device=config.device, translator=translator_dir,
                                accept_unverified=config.accept_unverified_translator)
        if self.world.translator is None:
            raise CheckpointError(f"{config.world} has no translator; serving needs one (pass translator=...)")
        self.kinds = request_kinds(self.world.encoder)
        # A kind's own translator (not the default, which promotions replace): built once, so that its
        # jobs meet in one batch key and no batch pays for a new Sampler per condition.
        self.own_samplers = {kind: self.world.sampler(kind) for kind in self.world.translators if kind != DEFAULT}
        self._refused: tuple[str, str] | None = None  # (version, why): a version not to fetch again
        self.sampler, self.description = None, {}
        self._install(self.world.sampler(), source, fingerprint(translator_dir))

    def _install(self, sampler, source: dict[str, Any], translator_fingerprint: str, error: str | None = None) -> None:
        """Serve `sampler` (G, f and a translator) from now on. The sampler and the description that
        names it are replaced by one assignment, so a batch sees the old pair or the new, never a mix."""
        version = (f"{source['registered_model']}/{source['registry_version']}" if "registry_version" in source
                   else f"{self.world.name}@{translator_fingerprint}")
        image_shape = getattr(self.world.generator, "image_shape", None)
        description = {
            "name": self.world.name,
            "description": self.world.description,
            "world": self.config.world,
            "version": version,
            "conditions": self.kinds,
            "labels": list(getattr(self.world.encoder, "class_names", None) or []) if "label" in self.kinds else None,
            "image_shape": list(image_shape) if image_shape else None,
            "encoder_kind": self.world.encoder.kind,
            "fingerprints": {**self.world.fingerprints, "translator": translator_fingerprint},
            "verified": not missing_fingerprints(self.world.translator),  # False: it records no G or f fingerprint (accepted unchecked)
            "translator": source,
            "pending_reload_error": error,  # why the version the alias names now is not served
            "langevin": self.world.langevin.to_dict(),
            "limits": {k: getattr(self.config, k) for k in ("max_samples", "max_steps", "max_prompt_chars",
                                                             "max_prompts", "max_image_side", "max_body_bytes",
                                                             "request_timeout_s")},
        }
        self.sampler, self.description = sampler, description

    def fetch_promoted(self) -> Reload:
        """Blocking (a worker thread runs it, off the request path): the version the translator's
        alias names now; if it is new, that version downloaded, loaded and checked against the live
        G and f (the same check as load_world's). Nothing here changes what is served: see apply."""
        name, _, alias = registry_reference(self.config.translator)
        version = alias_version(name, alias)
        if version == self.description["translator"].get("registry_version"):
            return Reload(version)
        if self._refused is not None and self._refused[0] == version:
            return Reload(version, error=self._refused[1], final=True)
        try:
            directory, source = fetch_translator(self.config.translator, version)
            translator = load_translator(directory, self.config.device)
            check_translator_fits(translator, self.world.fingerprints, f"models:/{name}/{version}",
                                  self.config.accept_unverified_translator)
            sampler = Sampler(self.world.generator, self.world.encoder, translator,  # checks the dimensions too
                              self.world.translator_std_scale)
            return Reload(version, translator, sampler, source, fingerprint(directory))
        except Exception as exc:  # noqa: BLE001 - whatever is wrong with it, the served translator stays
            return Reload(version, error=f"models:/{name}/{version} ({alias}) refused: {type(exc).__name__}: {exc}",
                          final=isinstance(exc, (CheckpointError, ConditionError)))

    def apply(self, reload: Reload) -> str | None:
        """Act on a fetch_promoted result. Call it between batches (a replica calls it under its
        batcher's lock). Returns a line to log when something changed."""
        served = self.description["version"]
        if reload.sampler is not None:
            self.world.translators[DEFAULT] = reload.translator
            self._install(reload.sampler, reload.source, reload.fingerprint)
            self._refused = None
            return f"translator: now serving {self.description['version']} (was {served})"
        if reload.error is not None:
            if reload.final:
                self._refused = (reload.version, reload.error)
            if reload.error == self.description["pending_reload_error"]:
                return None
            self.description = {**self.description, "pending_reload_error": reload.error}
            return f"translator: still serving {served}; {reload.error}"
        if self.description["pending_reload_error"] is not None:  # the alias names what is served again
            self.description = {**self.description, "pending_reload_error": None}
            return f"translator: the alias names {served} again"
        return None

    def condition(self, job: Job):
        """The job's condition (one row, tron.conditions.Condition); ConditionError on anything unusable."""
        if job.kind not in self.kinds:
            raise ConditionError(wrong_kind_message(self.description, job.kind))
        encoder = self.world.encoder
        if job.kind == "label":
            cond = conditions.from_labels(encoder, [job.value])
        elif job.kind == "text":
            cond = conditions.from_text(encoder, [job.value])
        elif job.kind == "image":
            cond = conditions.from_images(encoder, image_tensor(job.value))
        else:
            items = [(kind, image_tensor(value) if kind == "image" else value) for kind, value, _ in job.value]
            cond = conditions.build(encoder, items=items, weights=[w for _, _, w in job.value])
        sampler = self.sampler_for(cond.kind)
        cond.c = sampler.translator.check_condition(encoder.check_condition(cond.c.to(sampler.device), cond.space))
        return cond

    def sampler_for(self, kind: str) -> Sampler:
        """The sampler of a kind of condition: the world's own for a kind with a translator of its
        own, else the served default (a kind of another space without one: ConditionError)."""
        if kind in self.own_samplers:
            return self.own_samplers[kind]
        if space_of(self.world.encoder, kind) != MAIN:
            return self.world.sampler(kind)  # raises: no translator for that space
        return self.sampler

    def sample(self, conditions: list, jobs: list[Job], deadlines: list[float] | None = None) -> list[dict[str, Any]]:
        """Run the jobs as one batch; one dict per job: uint8 images (N, H, W, C), energies, steps,
        the description of the model that sampled them (or an error for a job whose deadline, a
        time.perf_counter() value, passed first) and the batch's `timing` in ms (init: z0 draws and
        their ranking; langevin; decode: the final G, energy and uint8 images), `runs` (Langevin
        batches: one per encoder space) and its size."""
        description = self.description  # the whole batch runs on this translator
        steps = [self.world.langevin.steps if job.steps is None else job.steps for job in jobs]
        deadlines = deadlines or [None] * len(jobs)
        results: list = [None] * len(jobs)
        by_space: dict[str, tuple[Sampler, list[int], list[Chains]]] = {}  # a space's rows share one run
        for i, cond in enumerate(conditions):
            sampler = self.sampler_for(cond.kind)
            chains = Chains(cond.c.expand(jobs[i].num_samples, -1),
                            torch.Generator(device=sampler.device).manual_seed(int(jobs[i].seed)), steps[i],
                            deadlines[i], translator=sampler.translator)
            _, members, groups = by_space.setdefault(sampler.space, (sampler, [], []))
            members.append(i)
            groups.append(chains)
        stages = {"init": 0.0, "langevin": 0.0, "decode": 0.0}
        for sampler, members, groups in by_space.values():
            timings: dict[str, float] = {}
            for i, res in zip(members, sampler.run(groups, self.world.langevin, timings=timings)):
                results[i] = res
            for k in stages:
                stages[k] += timings[k]
        t0 = time.perf_counter()
        outs = [None if res is None else to_uint8(res.images) for res in results]
        stages["decode"] += time.perf_counter() - t0
        batch = {"timing": {f"{k}_ms": 1000 * v for k, v in stages.items()}, "runs": len(by_space),
                 "batch_requests": len(jobs), "batch_rows": sum(j.num_samples for j in jobs), "model": description}
        return [{"error": "timed out", **batch} if res is None else
                {"images": images, "energies": res.energies.tolist(), "steps": t, **batch}
                for res, images, t in zip(results, outs, steps)]

    def serve(self, jobs: list[Job], arrivals: list[float]) -> list[dict[str, Any]]:
        """A replica's batch: each job's condition (a job whose condition is unusable gets its
        error alone), then `sample` of the rest as one batch, deadlines counted from `arrivals`
        (time.perf_counter() values). Adds to each `timing`: queue (arrival -> batch start),
        assembly (conditions encoded and checked) and sample (the batch's whole time), in ms."""
        start = time.perf_counter()
        out: list[dict[str, Any]] = [{} for _ in jobs]
        ok, conds = [], []
        for i, job in enumerate(jobs):
            try:
                conds.append(self.condition(job))
                ok.append(i)
            except (TronError, ValueError) as exc:  # the caller's input: answer it, stay up
                out[i] = {"error": str(exc)}
        assembled = time.perf_counter()
        deadlines = [arrivals[i] + (jobs[i].timeout_s if jobs[i].timeout_s is not None else math.inf) for i in ok]
        for i, res in zip(ok, self.sample(conds, [jobs[i] for i in ok], deadlines) if ok else []):
            out[i] = res
        end = time.perf_counter()
        for res, arrived in zip(out, arrivals):
            if "timing" in res:
                res["timing"].update(queue_ms=1000 * (start - arrived), assembly_ms=1000 * (assembled - start),
                                     sample_ms=1000 * (end - start))
        return out
