"""Serve TR0N sampling over HTTP with Ray Serve: a FastAPI ingress in front of a sampler deployment
that holds G, f and the translator, loaded once per replica.

    client --HTTP--> TronIngress (validation, PNG encoding) --handle--> TronSampler (@serve.batch)

API (see docs/serve.md; FastAPI serves the OpenAPI schema at /openapi.json and a form at /docs):

    POST /v1/generate   {"label": 7} | {"text": "..."} | {"image": "<base64 PNG>"} |
                        {"prompts": [{"text": "...", "weight": 1.0}, {"image": "...", "weight": -0.5}]}
                        plus "num_samples", "steps", "seed"  ->  base64 PNGs, energies, model, timing
    GET  /v1/health     the ingress answers (liveness)
    GET  /v1/ready      the sampler has loaded its model and answers (readiness)
    GET  /v1/model      names, fingerprints and version of the loaded G, f and translator
    GET  /              a browser page

Promotion: a sampler started with translator models:/NAME@alias re-resolves the alias every
`reload_interval_s`; a new version is downloaded and checked against the live G and f in a thread,
then swapped in between batches (a batch runs on one translator from start to end). A version that
does not fit is refused: the replica keeps serving the old one and says why in /v1/model.

Batching: concurrent requests that reach one sampler replica are grouped by @serve.batch and run as
ONE Langevin chain batch: their condition rows are concatenated so every step is one G/f forward and
backward pass; a request with fewer `steps` leaves the batch's active rows when its steps are done.
Seeds: every request draws from its own torch.Generator seeded with its `seed`, in the same order as
`Sampler.sample`, so a request's images depend only on (model version, condition, num_samples,
steps, seed): not on which other requests shared its batch. They equal `tron sample` with the same
arguments up to float rounding of batched kernels.
"""

import argparse
import asyncio
import base64
import binascii
import json
import logging
import math
import os
import signal
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from ray import serve

PAGE_FILE = Path(__file__).with_name("serve_page.html")
CONDITION_KINDS = ("label", "text", "image", "prompts")
INGRESS_NAME, SAMPLER_NAME = "TronIngress", "TronSampler"
APP_NAME = "tron"


# -- configuration -------------------------------------------------------------------------------

@dataclass
class ServeConfig:
    """Everything a deployment needs; the Serve config YAML's `args:` are these fields."""

    world: str = "zoo:digits"  # zoo:NAME or a world directory (G, f and the default translator)
    translator: str | None = None  # a translator directory or models:/NAME@alias (default: the world's)
    reload_interval_s: float = 30.0  # how often a replica re-resolves models:/NAME@alias to follow a
    #                                  promotion; 0 never (ignored for other translators)
    device: str = "cpu"
    # Per-request caps: larger values answer 422 (they also bound one request's cost).
    max_samples: int = 16
    max_steps: int = 200
    max_prompt_chars: int = 200
    max_prompts: int = 8  # items in a weighted list of prompts
    max_image_side: int = 512  # px; the image is checked before its pixels are decoded
    max_body_bytes: int = 1_000_000  # larger bodies answer 413 without being read
    request_timeout_s: float = 30.0  # queue + sampling; past it the ingress answers 504
    # Sampler deployment: batching and queue bounds (past max_queued_requests callers get 503).
    max_batch_size: int = 16  # requests per @serve.batch call
    batch_wait_timeout_s: float = 0.01  # how long a partial batch waits for company
    sampler_replicas: int = 1
    sampler_num_cpus: float = 1.0
    max_ongoing_requests: int = 32  # per sampler replica: >= 2 * max_batch_size so that the
    #                                 next batch fills while one runs
    max_queued_requests: int = 64  # waiting for a sampler replica, per caller
    # Ingress deployment: it only awaits the sampler, so it may hold many requests cheaply.
    ingress_num_cpus: float = 0.1
    ingress_max_ongoing_requests: int = 256
    ingress_max_queued_requests: int = 256

    def __post_init__(self) -> None:
        positive = ("max_samples", "max_steps", "max_prompt_chars", "max_prompts", "max_image_side", "max_body_bytes",
                    "max_batch_size", "sampler_replicas", "max_ongoing_requests", "ingress_max_ongoing_requests")
        for name in positive:
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        for name in ("max_queued_requests", "ingress_max_queued_requests"):
            if getattr(self, name) < -1:
                raise ValueError(f"{name} must be -1 (unbounded) or >= 0")
        if not self.reload_interval_s >= 0:
            raise ValueError(f"reload_interval_s must be >= 0 (0: never reload), got {self.reload_interval_s!r}")
        if not self.request_timeout_s > 0 or self.batch_wait_timeout_s < 0:
            raise ValueError("request_timeout_s must be > 0 and batch_wait_timeout_s >= 0")
        if not self.sampler_num_cpus >= 0 or not self.ingress_num_cpus >= 0:
            raise ValueError("num_cpus must be >= 0")
        if self.max_ongoing_requests < self.max_batch_size:
            raise ValueError(f"max_ongoing_requests ({self.max_ongoing_requests}) must be >= max_batch_size "
                             f"({self.max_batch_size}), or batches can never fill")

    @classmethod
    def from_dict(cls, args: dict[str, Any] | None) -> "ServeConfig":
        args = dict(args or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(args) - known)
        if unknown:
            raise ValueError(f"unknown serve option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**args)

    def follows_alias(self) -> bool:
        """Whether replicas re-resolve the translator's registry alias to pick up promotions."""
        ref = registry_reference(self.translator) if self.translator else None
        return ref is not None and ref[2] is not None and self.reload_interval_s > 0


# -- the model a sampler replica holds (no Ray here) ----------------------------------------------

@dataclass
class Job:
    """One validated request as the sampler deployment receives it."""

    kind: str  # one of CONDITION_KINDS
    value: Any  # int | str | (H, W, 3) uint8 array | [(kind, value, weight), ...]
    num_samples: int = 1
    steps: int | None = None  # None: the world's default
    seed: int = 0
    timeout_s: float | None = None  # what is left of the request's time when the ingress sends it


def condition_kinds(encoder) -> list[str]:
    kinds = []
    if hasattr(encoder, "condition_from_labels"):
        kinds.append("label")
    if hasattr(encoder, "condition_from_text"):
        kinds += ["text", "prompts"]
    if hasattr(encoder, "condition_from_images"):
        kinds.append("image")
    return kinds


def registry_reference(uri: str) -> tuple[str, str | None, str | None] | None:
    """models:/NAME@alias -> (NAME, None, alias); models:/NAME/3 -> (NAME, "3", None); else None."""
    if not uri.startswith("models:/"):
        return None
    rest = uri[len("models:/"):].strip("/")
    if "@" in rest:
        name, alias = rest.rsplit("@", 1)
        return name, None, alias
    name, _, version = rest.rpartition("/")
    return (name, version, None) if name and version.isdigit() else None


def alias_version(name: str, alias: str) -> str:
    """The version a registry alias names now (one call to MLFLOW_TRACKING_URI)."""
    import mlflow

    return str(mlflow.MlflowClient().get_model_version_by_alias(name, alias).version)


def resolve_translator(spec: str, version: str | None = None) -> tuple[Path, dict[str, Any]]:
    """A local translator directory for `spec`, and where it came from.

    An alias is resolved to its version number first (unless the caller did: `version`) and that
    version is downloaded, so the version a replica reports is the one it loaded even if the
    alias moves meanwhile."""
    from tron.uris import resolve_local_dir

    info: dict[str, Any] = {"source": spec}
    ref = registry_reference(spec)
    if ref is not None:
        name, fixed, alias = ref
        version = fixed or version or alias_version(name, alias)
        info.update(registered_model=name, registry_version=str(version), alias=alias)
        spec = f"models:/{name}/{version}"
    return resolve_local_dir(spec), info


@dataclass
class Reload:
    """What a check of the translator's alias found (ServedModel.fetch_promoted -> apply)."""

    version: str | None  # the version the alias names; None if the registry could not say
    translator: Any = None  # that version, loaded and checked against G and f: ready to swap in
    sampler: Any = None
    source: dict[str, Any] | None = None
    fingerprint: str | None = None
    error: str | None = None  # why it cannot be served
    final: bool = False  # the version itself is unusable (not a failed download): do not fetch it again


class ServedModel:
    """G, f and the translator of one world, with the batched sampling the server needs."""

    def __init__(self, config: ServeConfig) -> None:
        import torch

        from tron.checkpoint import fingerprint
        from tron.errors import CheckpointError
        from tron.world import load_world, resolve_world_path

        self.config = config
        world_path = resolve_world_path(config.world)
        if config.translator:
            translator_dir, source = resolve_translator(config.translator)
        else:
            translator_dir, source = world_path / "translator", {"source": f"{config.world} (bundled)"}
        self.world = load_world(config.world, device=config.device, translator=translator_dir)
        if self.world.translator is None:
            raise CheckpointError(f"{config.world} has no translator; serving needs one (pass translator=...)")
        self.kinds = condition_kinds(self.world.encoder)
        self._torch = torch
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
            "translator": source,
            "pending_reload_error": error,  # why the version the alias names now is not served
            "langevin": asdict(self.world.langevin),
            "limits": {k: getattr(self.config, k) for k in ("max_samples", "max_steps", "max_prompt_chars",
                                                             "max_prompts", "max_image_side", "max_body_bytes",
                                                             "request_timeout_s")},
        }
        self.sampler, self.description = sampler, description

    def fetch_promoted(self) -> Reload:
        """Blocking (a worker thread runs it, off the request path): the version the translator's
        alias names now; if it is new, that version downloaded, loaded and checked against the live
        G and f (the same check as load_world's). Nothing here changes what is served: see apply."""
        from tron.checkpoint import fingerprint
        from tron.errors import CheckpointError, ConditionError
        from tron.sampler import Sampler
        from tron.translator import load_translator
        from tron.world import check_translator_fits

        name, _, alias = registry_reference(self.config.translator)
        version = alias_version(name, alias)
        if version == self.description["translator"].get("registry_version"):
            return Reload(version)
        if self._refused is not None and self._refused[0] == version:
            return Reload(version, error=self._refused[1], final=True)
        try:
            directory, source = resolve_translator(self.config.translator, version)
            translator = load_translator(directory, self.config.device)
            check_translator_fits(translator, self.world.fingerprints, f"models:/{name}/{version}")
            sampler = Sampler(self.world.generator, self.world.encoder, translator)  # checks the dimensions too
            return Reload(version, translator, sampler, source, fingerprint(directory))
        except Exception as exc:  # noqa: BLE001 - whatever is wrong with it, the served translator stays
            return Reload(version, error=f"models:/{name}/{version} ({alias}) refused: {type(exc).__name__}: {exc}",
                          final=isinstance(exc, (CheckpointError, ConditionError)))

    def apply(self, reload: Reload) -> str | None:
        """Act on a fetch_promoted result. Call it between batches (a replica calls it on its event
        loop, which a running batch blocks). Returns a line to log when something changed."""
        served = self.description["version"]
        if reload.sampler is not None:
            self.world.translator = reload.translator
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
        """One condition row c (1, k) for the job; ConditionError on anything unusable."""
        from tron.errors import ConditionError

        torch = self._torch
        if job.kind not in self.kinds:
            raise ConditionError(wrong_kind_message(self.description, job.kind))
        encoder = self.world.encoder
        if job.kind == "label":
            c = encoder.condition_from_labels([job.value])
        elif job.kind == "text":
            c = encoder.condition_from_text([job.value])
        elif job.kind == "image":
            c = encoder.condition_from_images(image_tensor(job.value))
        else:
            from tron.clip import compose

            rows = []
            for kind, value, _ in job.value:
                if kind == "image" and "image" not in self.kinds:
                    raise ConditionError(f"this model ({self.world.name}) takes no image prompts")
                rows.append(encoder.condition_from_text([value]) if kind == "text"
                            else encoder.condition_from_images(image_tensor(value)))
            c = compose(torch.cat(rows).cpu(), [w for _, _, w in job.value])  # its weights are a CPU tensor
        c = encoder.check_condition(c.to(self.sampler.device))
        return self.sampler.translator.check_condition(c)

    def sample(self, conditions: list, jobs: list[Job], deadlines: list[float] | None = None) -> list[dict[str, Any]]:
        """Run the jobs as one batch; one dict per job: uint8 images (N, H, W, C), energies, steps
        and the description of the model that sampled them (or an error for a job whose deadline,
        a time.perf_counter() value, passed first)."""
        from tron.images import to_uint8

        sampler, description = self.sampler, self.description  # the whole batch runs on this translator
        steps = [self.world.langevin.steps if job.steps is None else job.steps for job in jobs]
        t0 = time.perf_counter()
        results = sample_batch(sampler, self.world.langevin, conditions, [j.num_samples for j in jobs],
                               steps, [j.seed for j in jobs], deadlines)
        batch = {"sample_ms": 1000 * (time.perf_counter() - t0), "batch_requests": len(jobs),
                 "batch_rows": sum(j.num_samples for j in jobs), "model": description}
        return [{"error": "timed out", **batch} if result is None else
                {"images": to_uint8(result[0]), "energies": result[1].tolist(), "steps": t, **batch}
                for result, t in zip(results, steps)]


def wrong_kind_message(model: dict, kind: str) -> str:
    """For a request whose kind of condition the model does not take; `model` is its description."""
    if model["conditions"] == ["label"]:
        takes = f"labels (0..{len(model['labels']) - 1})" if model.get("labels") else "labels"
    else:
        takes = "text, images or weighted prompts" if "image" in model["conditions"] else "text or weighted prompts"
    return f"this model ({model['name']}) takes {takes}, not {kind}; see GET /v1/model"


def image_tensor(image):
    """(H, W, 3) uint8 -> (1, 3, H, W) float in [0, 1]."""
    import torch

    return torch.from_numpy(image).permute(2, 0, 1).unsqueeze(0).float() / 255


def sample_batch(sampler, langevin, conditions: list, sizes: list[int], steps: list[int], seeds: list[int],
                 deadlines: list[float] | None = None):
    """TR0N sampling for several requests in one batch; returns [(images (n, C, H, W), energies (n,))].

    The same algorithm as `Sampler.sample` with `langevin_dynamics` (translator init, SGLD,
    decode), but each request draws its translator samples and noise from its own generator, in
    the order `Sampler.sample` draws them for that request alone, and request i only takes
    steps[i] steps. So a request's result does not depend on the rest of its batch.
    A request whose deadline (time.perf_counter()) passes leaves the batch and gets None: nobody
    waits for it any more, so it should not slow the others down."""
    import torch

    from tron.langevin import langevin_step

    device = sampler.device
    rngs = [torch.Generator(device=device).manual_seed(int(s)) for s in seeds]
    bounds = [0]
    for n in sizes:
        bounds.append(bounds[-1] + n)
    c = torch.cat([ci.to(device).expand(n, -1) for ci, n in zip(conditions, sizes)])  # (N, k)
    z = torch.cat([sampler.initial_latents(c[a:b], "translator", g, None)
                   for a, b, g in zip(bounds, bounds[1:], rngs)])  # (N, d)
    if langevin.clamp is not None:
        z = z.clamp(-langevin.clamp, langevin.clamp)
    expired = [False] * len(sizes)
    for t in range(max(steps, default=0)):
        if deadlines is not None:
            now = time.perf_counter()
            expired = [gone or (s > t and now > d) for gone, s, d in zip(expired, steps, deadlines)]
        live = [i for i, s in enumerate(steps) if s > t and not expired[i]]
        if not live:
            break
        rows = torch.cat([torch.arange(bounds[i], bounds[i + 1], device=device) for i in live])
        noise = torch.cat([torch.randn((sizes[i], z.shape[1]), generator=rngs[i], device=device, dtype=z.dtype)
                           for i in live]) if langevin.noise_std else None
        z[rows], _ = langevin_step(z[rows], sampler.energy_fn(c[rows]), langevin, noise)
    with torch.no_grad():
        x = sampler.generator.decode(z)
        e = sampler.encoder.energy(x, c)
    return [None if gone else (x[a:b].cpu(), e[a:b].cpu()) for a, b, gone in zip(bounds, bounds[1:], expired)]


# -- the HTTP API (FastAPI; no Ray here either) ---------------------------------------------------

class Overloaded(Exception):
    """The sampler's queue is full: answer 503 and let the client retry."""


class Unavailable(Exception):
    """No sampler replica can take the request right now (starting, restarting, gone)."""


def request_models(config: ServeConfig):
    """The pydantic request and response models, with this server's caps in their schema."""
    from typing import Annotated

    from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

    b64_chars = 4 * (config.max_body_bytes // 3) + 4

    def optional(**extra):
        # A field that may be left out but is never null: its schema has no "default": null.
        def edit(schema: dict) -> None:
            schema.pop("default", None)
            schema.update(extra)
        return edit

    png = optional(format="byte", contentEncoding="base64", contentMediaType="image/png")

    def _json_integer(value):
        # JSON Schema's integer admits 3.0 but not "3" or true; pydantic's lax int would take all three.
        if isinstance(value, (str, bool, bytes)):
            raise ValueError("Input should be a valid integer")
        return value

    # Absent and null are different in JSON Schema: the condition fields may be left out, never null.
    JsonInt = Annotated[int, BeforeValidator(_json_integer)]

    def _one_of(model, names):
        given = [n for n in names if getattr(model, n) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of {', '.join(names)}" + (f"; got {', '.join(given)}" if given else ""))
        text = getattr(model, "text", None)
        if text is not None and not text.strip():
            raise ValueError("the prompt is empty (only whitespace)")
        return model

    class Prompt(BaseModel):
        """One item of a weighted composition: a text or an image, and its weight."""

        model_config = ConfigDict(extra="forbid", json_schema_extra={"oneOf": [{"required": ["text"]}, {"required": ["image"]}]})
        text: str = Field(None, min_length=1, max_length=config.max_prompt_chars, json_schema_extra=optional())
        image: str = Field(None, min_length=1, max_length=b64_chars, description="base64 PNG", json_schema_extra=png)
        weight: float = Field(1.0, ge=-10, le=10, allow_inf_nan=False,
                              description="negative weights steer away from the prompt")

        @model_validator(mode="after")
        def _exactly_one(self):
            return _one_of(self, ("text", "image"))

    class GenerateRequest(BaseModel):
        """Exactly one condition (label, text, image or prompts) and the sampling parameters."""

        model_config = ConfigDict(extra="forbid", json_schema_extra={
            "oneOf": [{"required": [kind]} for kind in CONDITION_KINDS], "examples": [
            {"label": 7, "num_samples": 4, "steps": 50, "seed": 0},
            {"text": "a small red circle in the top left", "num_samples": 2},
            {"prompts": [{"text": "a red circle", "weight": 1.0}, {"text": "a large shape", "weight": -0.5}]},
        ]})
        label: JsonInt = Field(None, ge=0, json_schema_extra=optional(),
                                  description="a class index, 0..K-1 with K = len(labels) of GET /v1/model (classifier worlds)")
        text: str = Field(None, min_length=1, max_length=config.max_prompt_chars, description="a prompt (CLIP worlds)",
                          json_schema_extra=optional())
        image: str = Field(None, min_length=1, max_length=b64_chars, json_schema_extra=png,
                                  description=f"base64 PNG, each side <= {config.max_image_side} px (CLIP worlds)")
        prompts: list[Prompt] = Field(None, min_length=1, max_length=config.max_prompts, json_schema_extra=optional(),
                                             description="a weighted composition (CLIP worlds)")
        num_samples: JsonInt = Field(1, ge=1, le=config.max_samples)
        steps: JsonInt = Field(None, ge=0, le=config.max_steps, json_schema_extra=optional(),
                                  description="Langevin steps; default: the world's; 0 = translator only")
        seed: JsonInt = Field(0, ge=0, le=2**63 - 1, description="same request + same seed = same images")

        @model_validator(mode="after")
        def _exactly_one(self):
            return _one_of(self, CONDITION_KINDS)

    class ModelRef(BaseModel):
        name: str
        version: str = Field(description="registry NAME/VERSION, or world@translator-fingerprint")
        translator_fingerprint: str

    class Timing(BaseModel):
        total_ms: float = Field(description="ingress: request validated -> response ready")
        wait_ms: float = Field(description="total_ms - sample_ms: queueing, transfer and PNG encoding")
        sample_ms: float = Field(description="the batch's sampling time (shared by its requests)")
        batch_requests: int = Field(description="requests that shared the batch")
        batch_rows: int = Field(description="samples computed in the batch")

    class GenerateResponse(BaseModel):
        images: list[str] = Field(description="base64 PNG files, num_samples of them")
        energies: list[float | None] = Field(description="final energy E(x, c) of each image (lower fits better)")
        condition: str
        num_samples: int
        steps: int
        seed: int
        model: ModelRef
        timing: Timing

    return GenerateRequest, GenerateResponse


def decode_base64_image(text: str, max_side: int, what: str = "image"):
    from tron.images import decode_image

    try:
        data = base64.b64decode(text.split(",", 1)[1] if text.startswith("data:") else text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{what} is not valid base64") from None
    try:
        return decode_image(data, max_side=max_side)
    except ValueError as exc:
        raise ValueError(f"{what}: {exc}") from None


def job_from_request(req, config: ServeConfig) -> tuple[Job, str]:
    """(the job for the sampler, a short description of the condition); ValueError for bad images."""
    params = {"num_samples": req.num_samples, "steps": req.steps, "seed": req.seed}
    if req.label is not None:
        return Job("label", req.label, **params), f"label {req.label}"
    if req.text is not None:
        text = " ".join(req.text.split())
        return Job("text", text, **params), f"text {text!r}"
    if req.image is not None:
        return Job("image", decode_base64_image(req.image, config.max_image_side), **params), "image"
    items, names = [], []
    for i, p in enumerate(req.prompts):
        if p.text is not None:
            items.append(("text", " ".join(p.text.split()), p.weight))
            names.append(f"{p.weight:g} x {items[-1][1]!r}")
        else:
            items.append(("image", decode_base64_image(p.image, config.max_image_side, f"prompts[{i}].image"), p.weight))
            names.append(f"{p.weight:g} x image")
    return Job("prompts", items, **params), " + ".join(names)


class BodyLimit:
    """ASGI middleware: 413 for bodies over max_bytes, by Content-Length or while streaming."""

    def __init__(self, app, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            return await self._too_large(send)
        # Read the body here, up to the limit, then hand it on: a chunked upload cannot grow past it.
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                return await self._too_large(send)
            more = message.get("more_body", False)
        body, sent = b"".join(chunks), False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)

    async def _too_large(self, send) -> None:
        payload = json.dumps({"detail": f"request body over {self.max_bytes} bytes"}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": payload})


def create_app(config: ServeConfig, backend):
    """The FastAPI app. `backend` has `async describe() -> dict` and `async generate(job) -> dict`."""
    from fastapi import FastAPI
    from fastapi.responses import HTMLResponse, JSONResponse

    from tron.images import png_bytes

    GenerateRequest, GenerateResponse = request_models(config)
    page = PAGE_FILE.read_text()
    app = FastAPI(title="tron sampling API", version="1",
                  description="TR0N: conditional samples from a frozen generator, a frozen encoder and a translator.")
    app.add_middleware(BodyLimit, max_bytes=config.max_body_bytes)
    state: dict[str, Any] = {}

    def error(status: int, detail: str, headers: dict | None = None) -> JSONResponse:
        return JSONResponse({"detail": detail}, status_code=status, headers=headers)

    async def describe(timeout: float, fresh: bool = False) -> dict:
        # G, f and so the condition kinds are fixed for the deployment's life: validation asks once.
        # The translator may change (promotion), so /v1/model asks a sampler replica every time.
        if fresh or "model" not in state:
            state["model"] = await asyncio.wait_for(backend.describe(), timeout)
        return state["model"]

    def documented(*codes: int) -> dict:
        text = {400: "body is not UTF-8 JSON", 413: "body too large", 422: "invalid request (the detail says what)", 503: "overloaded or not ready: retry",
                504: "not finished within the request timeout"}
        return {code: {"description": text[code]} for code in codes}

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index():
        return page

    @app.get("/v1/health", summary="liveness: the ingress answers")
    async def health() -> dict:
        return {"status": "ok"}

    @app.get("/v1/ready", summary="readiness: the sampler has loaded its model", responses=documented(503))
    async def ready():
        try:
            model = await describe(timeout=5)
        except Exception as exc:  # noqa: BLE001 - not ready, whatever the reason
            return error(503, f"not ready: {type(exc).__name__}")
        return {"ready": True, "model": model["name"], "version": model["version"]}

    @app.get("/v1/model", summary="the loaded G, f and translator: names, fingerprints, version, limits",
             responses=documented(503))
    async def model_info():
        try:
            return await describe(timeout=config.request_timeout_s, fresh=True)
        except Exception as exc:  # noqa: BLE001
            return error(503, f"model not available yet: {type(exc).__name__}")

    @app.post("/v1/generate", response_model=GenerateResponse, summary="sample images for one condition",
              responses=documented(400, 413, 422, 503, 504))
    async def generate(req: GenerateRequest):
        t0 = time.perf_counter()
        try:
            model = await describe(timeout=config.request_timeout_s)
        except Exception as exc:  # noqa: BLE001
            return error(503, f"model not available yet: {type(exc).__name__}", {"Retry-After": "1"})
        try:
            job, described = job_from_request(req, config)
        except ValueError as exc:
            return error(422, str(exc))
        if job.kind not in model["conditions"]:
            return error(422, wrong_kind_message(model, job.kind))
        job.timeout_s = config.request_timeout_s - (time.perf_counter() - t0)
        try:
            out = await asyncio.wait_for(backend.generate(job), job.timeout_s)
        except Overloaded as exc:
            return error(503, f"overloaded, retry later ({exc})", {"Retry-After": "1"})
        except Unavailable as exc:
            return error(503, f"sampler unavailable, retry later ({exc})", {"Retry-After": "1"})
        except asyncio.TimeoutError:
            return error(504, f"not finished within {config.request_timeout_s:g} s")
        if out.get("error") == "timed out":
            return error(504, f"not finished within {config.request_timeout_s:g} s")
        if out.get("error"):
            return error(422, out["error"])
        state["model"] = out["model"]  # the latest description seen, for /v1/ready
        images = [base64.b64encode(png_bytes(im)).decode() for im in out["images"]]
        total_ms = 1000 * (time.perf_counter() - t0)
        return {
            "images": images,
            "energies": [e if math.isfinite(e) else None for e in out["energies"]],
            "condition": described,
            "num_samples": job.num_samples,
            "steps": out["steps"],
            "seed": job.seed,
            "model": {"name": out["model"]["name"], "version": out["model"]["version"],
                      "translator_fingerprint": out["model"]["fingerprints"]["translator"]},
            "timing": {"total_ms": total_ms, "wait_ms": max(0.0, total_ms - out["sample_ms"]),
                       "sample_ms": out["sample_ms"], "batch_requests": out["batch_requests"],
                       "batch_rows": out["batch_rows"]},
        }

    return app


# -- Ray Serve deployments --------------------------------------------------------------------------

@serve.deployment(name=SAMPLER_NAME)
class TronSampler:
    """Holds the model; concurrent `generate` calls meet in `_batch`."""

    def __init__(self, config: dict) -> None:
        self.config = ServeConfig.from_dict(config)
        self.model = ServedModel(self.config)
        self._batch.set_max_batch_size(self.config.max_batch_size)
        self._batch.set_batch_wait_timeout_s(self.config.batch_wait_timeout_s)
        # Serve runs the constructor on the replica's event loop: the task shares it with the batches.
        self._follower = asyncio.get_running_loop().create_task(self._follow_alias()) \
            if self.config.follows_alias() else None

    async def describe(self) -> dict:
        return self.model.description

    async def _follow_alias(self) -> None:
        """Follow promotions: check the alias every reload_interval_s; fetch and check a new version
        in a thread, then swap it in here, on the event loop, which a running batch blocks: so the
        swap falls between batches and no request sees two translators."""
        log = logging.getLogger("ray.serve")
        while True:
            await asyncio.sleep(self.config.reload_interval_s)
            try:
                reload = await asyncio.to_thread(self.model.fetch_promoted)
            except Exception as exc:  # noqa: BLE001 - e.g. the registry is unreachable: keep serving, retry
                reload = Reload(None, error=f"cannot resolve {self.config.translator}: {type(exc).__name__}: {exc}")
            message = self.model.apply(reload)
            if message:
                (log.warning if self.model.description["pending_reload_error"] else log.info)(message)

    async def replica(self) -> dict:
        """Which process answers (tests check that bad requests do not restart it)."""
        return {"pid": os.getpid(), "replica": serve.get_replica_context().replica_id.unique_id}

    async def generate(self, job: Job) -> dict:
        from tron.errors import TronError

        arrived = time.perf_counter()  # the request's deadline counts from here
        try:
            c = self.model.condition(job)
        except (TronError, ValueError) as exc:  # the caller's input: answer it, stay up
            return {"error": str(exc)}
        return await self._batch((c, job, arrived))  # its "model" is the one that sampled it

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.01)  # both reset from the config in __init__
    async def _batch(self, items: list[tuple]) -> list[dict]:
        deadlines = [arrived + (job.timeout_s if job.timeout_s is not None else math.inf) for _, job, arrived in items]
        # Sampling blocks this replica's event loop on purpose. @serve.batch forms a batch as soon as
        # requests arrive, even while the previous batch still runs; in a thread, the requests that
        # arrive meanwhile would form many small batches queued behind it. Blocked, they wait
        # unread and become the next batch together.
        outs = self.model.sample([c for c, _, _ in items], [job for _, job, _ in items], deadlines)
        return outs


class HandleBackend:
    """The sampler deployment as create_app's backend: Serve's errors become Overloaded / Unavailable."""

    def __init__(self, handle) -> None:
        self.handle = handle

    async def describe(self) -> dict:
        return await self.handle.describe.remote()

    async def generate(self, job: Job) -> dict:
        from ray.exceptions import RayActorError
        from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError

        response = self.handle.generate.remote(job)
        try:
            return await response
        except asyncio.CancelledError:  # the ingress gave up (timeout): drop the queued work too
            response.cancel()
            raise
        except BackPressureError as exc:
            raise Overloaded(str(exc).splitlines()[0]) from None
        except (RayActorError, DeploymentUnavailableError) as exc:
            raise Unavailable(type(exc).__name__) from None


@serve.deployment(name=INGRESS_NAME)
@serve.ingress()
class TronIngress:
    """HTTP in front of the sampler; the app is built per replica from the config."""

    def __init__(self, sampler, config: dict) -> None:
        self.config = ServeConfig.from_dict(config)
        self.sampler = sampler

    def __serve_build_asgi_app__(self):
        return create_app(self.config, HandleBackend(self.sampler))


def build_app(config: ServeConfig):
    """The Serve application: TronIngress.bind(TronSampler.bind(...)), options from the config."""
    args = asdict(config)
    bound_sampler = TronSampler.options(
        num_replicas=config.sampler_replicas,
        max_ongoing_requests=config.max_ongoing_requests,
        max_queued_requests=config.max_queued_requests,
        ray_actor_options={"num_cpus": config.sampler_num_cpus},
    ).bind(args)
    return TronIngress.options(
        max_ongoing_requests=config.ingress_max_ongoing_requests,
        max_queued_requests=config.ingress_max_queued_requests,
        ray_actor_options={"num_cpus": config.ingress_num_cpus},
    ).bind(bound_sampler, args)


def app_builder(args: dict[str, Any]):
    """For a Serve config's `import_path: pipelines.serve:app_builder`; `args:` are ServeConfig fields."""
    return build_app(ServeConfig.from_dict(args))


# -- `tron serve` ---------------------------------------------------------------------------------

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from pipelines.common import ArgumentParser

    d = ServeConfig()
    p = ArgumentParser(prog="tron serve", description="Serve TR0N sampling over HTTP on a local (or given) Ray cluster.")
    p.add_argument("--world", default=d.world, help="zoo:NAME or a world directory")
    p.add_argument("--translator", default=None, help="translator directory or models:/NAME@alias (default: the world's)")
    p.add_argument("--reload-interval", type=float, default=d.reload_interval_s,
                   help="seconds between checks of a models:/NAME@alias translator for a promotion (0: never)")
    p.add_argument("--host", default="127.0.0.1", help="HTTP host (0.0.0.0 to listen on every interface)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--device", default=d.device)
    p.add_argument("--replicas", type=int, default=d.sampler_replicas, help="sampler replicas")
    p.add_argument("--num-cpus", type=float, default=d.sampler_num_cpus, help="CPUs per sampler replica")
    p.add_argument("--max-batch-size", type=int, default=d.max_batch_size, help="requests per batch (1 = no batching)")
    p.add_argument("--max-samples", type=int, default=d.max_samples, help="cap on num_samples per request")
    p.add_argument("--max-steps", type=int, default=d.max_steps, help="cap on steps per request")
    p.add_argument("--max-queued", type=int, default=d.max_queued_requests,
                   help="requests waiting for the sampler beyond which callers get 503")
    p.add_argument("--timeout", type=float, default=d.request_timeout_s, help="request timeout in seconds (504 past it)")
    p.add_argument("--address", default=None, help="Ray cluster address (default: RAY_ADDRESS or a new local one)")
    p.add_argument("--ray-cpus", type=int, default=None, help="CPUs of a new local Ray cluster")
    return p.parse_args(argv)


def config_from_args(args: argparse.Namespace) -> ServeConfig:
    return ServeConfig(world=args.world, translator=args.translator, reload_interval_s=args.reload_interval,
                       device=args.device, sampler_replicas=args.replicas, sampler_num_cpus=args.num_cpus,
                       max_batch_size=args.max_batch_size,
                       max_ongoing_requests=max(2 * args.max_batch_size, ServeConfig.max_ongoing_requests),
                       max_samples=args.max_samples, max_steps=args.max_steps, max_queued_requests=args.max_queued,
                       request_timeout_s=args.timeout)


def main(argv: list[str] | None = None) -> int:
    """Deploy the app and serve until interrupted (Ctrl-C or SIGTERM), then take it down again."""
    from pipelines.common import init_ray
    from tron.errors import CheckpointError, TronError
    from tron.uris import uri_scheme
    from tron.world import resolve_world_path

    args = parse_args(argv)
    try:
        config = config_from_args(args)
    except ValueError as exc:
        raise TronError(str(exc)) from None
    # Fail here, in one line, rather than inside a replica that Serve would keep restarting.
    resolve_world_path(config.world)
    if config.translator and uri_scheme(config.translator) is None and not Path(config.translator).is_dir():
        raise CheckpointError(f"translator {config.translator} is not a directory; give a directory or models:/NAME@alias")
    external = bool(args.address or os.environ.get("RAY_ADDRESS"))
    ray = init_ray(args.address, args.ray_cpus)
    from ray import serve

    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        # The HTTP timeout is a backstop behind the ingress's own (which answers a clearer 504).
        serve.start(http_options={"host": args.host, "port": args.port, "request_timeout_s": config.request_timeout_s + 10})
        serve.run(build_app(config), name=APP_NAME, route_prefix="/")
        print(f"[serve] {config.world} at http://{args.host}:{args.port}/  (API: /v1/generate, docs: /docs); Ctrl-C stops",
              flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("[serve] stopping", flush=True)
    finally:
        if external:  # someone else's cluster: remove only this application
            serve.delete(APP_NAME)
        else:
            serve.shutdown()
            ray.shutdown()
    return 0


if __name__ == "__main__":
    from pipelines import serve as _self
    from pipelines.common import run_main

    sys.exit(run_main(_self.main, None, "serve.py"))
