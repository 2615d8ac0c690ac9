"""The HTTP API (FastAPI; no Ray here): request and response models with this server's caps in
their schema, validation, the body-size limit and the app. `create_app(config, backend)` takes any
backend with `async describe() -> dict` and `async generate(job) -> dict`: the Ray deployment's
handle in production (pipelines.serve.deployments), a fake in tests.

Bad input is a 4xx with a message, never a 5xx: bodies over the limit 413; bodies that are not
strict JSON (including the constants NaN and Infinity, and numbers that overflow to infinity) and
invalid fields 422.
"""
# No `from __future__ import annotations`: FastAPI reads the route annotations at runtime.

import asyncio
import base64
import binascii
import json
import math
import time
from pathlib import Path
from typing import Any

from tron.conditions import normalize_prompt
from tron.errors import ConditionError
from tron.images import decode_image, png_bytes

from .config import ServeConfig
from .model import Job, wrong_kind_message

CONDITION_KINDS = ("label", "text", "image", "prompts")
PAGE_FILE = Path(__file__).with_name("page.html")


class Overloaded(Exception):
    """The sampler's queue is full: answer 503 and let the client retry."""


class Unavailable(Exception):
    """No sampler replica can take the request right now (starting, restarting, gone)."""


# Long: the request and response models are one schema, built together around this server's caps.
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
    # A class by index or by name ("sunglasses"): the CLI's --label, for a classifier with named classes.
    Label = Annotated[JsonInt, Field(ge=0)] | Annotated[str, Field(min_length=1, max_length=config.max_prompt_chars)]

    def _one_of(model, names):
        given = [n for n in names if getattr(model, n) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of {', '.join(names)}" + (f"; got {', '.join(given)}" if given else ""))
        if getattr(model, "text", None) is not None:
            try:  # the CLI's rule, once per request: nothing printable left (control, zero-width characters) is empty
                model.text = normalize_prompt(model.text)
            except ConditionError as exc:
                raise ValueError(str(exc)) from None
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
        label: Label = Field(None, json_schema_extra=optional(),
                             description="a class index, 0..K-1 with K = len(labels) of GET /v1/model, or a class name "
                                         "from that list (classifier worlds)")
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
        """Where the request's time went, in ms: the stages of its batch at the sampler replica
        (assembly, init, langevin, decode: shared by the batch's requests) and its own."""
        total_ms: float = Field(description="ingress: request validated -> response ready")
        wait_ms: float = Field(description="total_ms - sample_ms: queueing, transfer and PNG encoding")
        queue_ms: float = Field(description="at the sampler replica: arrival -> its batch starts")
        sample_ms: float = Field(description="the batch's time at the sampler (assembly to decode), shared by its requests")
        assembly_ms: float = Field(description="the batch's conditions encoded by f and checked")
        init_ms: float = Field(description="z0: the translator draws and their ranking by f")
        langevin_ms: float = Field(description="the Langevin steps (every G/f pass of the batch)")
        decode_ms: float = Field(description="the final G(z), its energy and the images as uint8")
        encode_ms: float = Field(description="ingress: this response's images as base64 PNG")
        transfer_ms: float = Field(description="the rest: validation and the round trip between ingress and sampler")
        batch: str = Field(description="the batch that sampled this request (REPLICA/N): requests with "
                                       "the same value shared it")
        batch_requests: int = Field(description="requests that shared the batch")
        batch_rows: int = Field(description="samples computed in the batch")
        batch_runs: int = Field(description="Langevin batches the batch ran as: one per encoder space "
                                            "(a classifier's labels and image features run apart)")

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
        label = req.label.strip() if isinstance(req.label, str) else req.label
        return Job("label", label, **params), f"label {label!r}" if isinstance(label, str) else f"label {label}"
    if req.text is not None:  # normalised by the request model's validator
        return Job("text", req.text, **params), f"text {req.text!r}"
    if req.image is not None:
        return Job("image", decode_base64_image(req.image, config.max_image_side), **params), "image"
    items, names = [], []
    for i, p in enumerate(req.prompts):
        if p.text is not None:
            items.append(("text", p.text, p.weight))
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


def strict_json(body: bytes) -> Any:
    """Parse a request body as strict JSON: NaN, Infinity and numbers that overflow to infinity
    are errors (Python's json accepts all three), so no non-finite value reaches validation."""
    def constant(name: str):
        raise ValueError(f"{name} is not valid JSON")

    def number(text: str) -> float:
        value = float(text)
        if not math.isfinite(value):
            raise ValueError(f"the number {text[:40]} is out of range")
        return value

    try:
        return json.loads(body, parse_constant=constant, parse_float=number, parse_int=_bounded_int)
    except RecursionError:
        raise ValueError("the JSON is nested too deeply") from None


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > 40:  # far beyond any field's range; int() of huge digit strings is slow
        raise ValueError(f"the integer {text[:20]}... is out of range")
    return int(text)


def strict_route_class():
    """An APIRoute whose requests parse their JSON body strictly (see strict_json)."""
    from fastapi import Request
    from fastapi.routing import APIRoute

    class StrictJSONRequest(Request):
        async def json(self) -> Any:
            if not hasattr(self, "_json"):
                body = await self.body()
                try:
                    self._json = strict_json(body)
                except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
                    raise json.JSONDecodeError(str(exc).splitlines()[0][:200], body.decode(errors="replace")[:100], 0) from None
            return self._json

    class StrictJSONRoute(APIRoute):
        def get_route_handler(self):
            handler = super().get_route_handler()

            async def strict(request: Request):
                return await handler(StrictJSONRequest(request.scope, request.receive))

            return strict

    return StrictJSONRoute


def safe_errors(errors: list[dict]) -> list[dict]:
    """Validation errors with only their JSON-safe parts (an echoed input may hold anything)."""
    out = []
    for e in errors:
        item = {k: e[k] for k in ("type", "loc", "msg") if k in e}
        item["loc"] = [x if isinstance(x, (str, int)) else str(x) for x in item.get("loc", [])]
        reason = (e.get("ctx") or {}).get("error")
        if reason is not None:
            item["msg"] = f"{item.get('msg', '')}: {str(reason)[:200]}"
        out.append(item)
    return out


# Long: the routes of one app, closures over its config, backend and state, read top to bottom as FastAPI writes them.
def create_app(config: ServeConfig, backend):
    """The FastAPI app. `backend` has `async describe() -> dict` and `async generate(job) -> dict`."""
    from fastapi import FastAPI
    from fastapi.responses import HTMLResponse, JSONResponse

    GenerateRequest, GenerateResponse = request_models(config)
    page = PAGE_FILE.read_text()
    from fastapi.exceptions import RequestValidationError

    app = FastAPI(title="tron sampling API", version="1",
                  description="TR0N: conditional samples from a frozen generator, a frozen encoder and a translator.")
    app.router.route_class = strict_route_class()  # before the routes are added
    app.add_middleware(BodyLimit, max_bytes=config.max_body_bytes)

    @app.exception_handler(RequestValidationError)
    async def invalid(request, exc: RequestValidationError):
        return JSONResponse({"detail": safe_errors(exc.errors())}, status_code=422)

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
        text = {413: "body too large", 422: "invalid request or body not strict JSON (the detail says what)",
                503: "overloaded or not ready: retry",
                504: "not finished within the request timeout"}
        return {code: {"description": text[code]} for code in codes}

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index():
        return page

    @app.get("/v1/health", summary="liveness: the ingress answers")
    async def health() -> dict:
        return {"status": "ok"}

    @app.get("/v1/ready", summary="readiness: a sampler replica answers now, its model loaded", responses=documented(503))
    async def ready():
        try:  # asked every time: a replica that died (and is being replaced) makes the service not ready
            model = await describe(timeout=5, fresh=True)
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
              responses=documented(413, 422, 503, 504))
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
        t1 = time.perf_counter()
        images = [base64.b64encode(png_bytes(im)).decode() for im in out["images"]]
        t2 = time.perf_counter()
        total_ms, encode_ms, timing = 1000 * (t2 - t0), 1000 * (t2 - t1), out["timing"]
        return {
            "images": images,
            "energies": [e if math.isfinite(e) else None for e in out["energies"]],
            "condition": described,
            "num_samples": job.num_samples,
            "steps": out["steps"],
            "seed": job.seed,
            "model": {"name": out["model"]["name"], "version": out["model"]["version"],
                      "translator_fingerprint": out["model"]["fingerprints"]["translator"]},
            "timing": {"total_ms": total_ms, "wait_ms": max(0.0, total_ms - timing["sample_ms"]), **timing,
                       "encode_ms": encode_ms,
                       "transfer_ms": max(0.0, total_ms - timing["queue_ms"] - timing["sample_ms"] - encode_ms),
                       "batch": out["batch"], "batch_requests": out["batch_requests"],
                       "batch_rows": out["batch_rows"], "batch_runs": out["runs"]},
        }

    return app
