"""ServeConfig: everything a deployment needs; the Serve config YAML's `args:` are its fields."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tron.errors import from_dict

from .promotion import registry_reference


@dataclass
class ServeConfig:
    """Everything a deployment needs; the Serve config YAML's `args:` are these fields."""

    world: str = "zoo:digits"  # zoo:NAME or a world directory (G, f and the default translator)
    translator: str | None = None  # a translator directory or models:/NAME@alias (default: the world's)
    accept_unverified_translator: bool = False  # serve a translator that records no G or f fingerprint
    #                                            (unchecked: a warning at every load, and in GET /v1/model)
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
    max_batch_size: int = 16  # requests per batch (pipelines.serve.batcher)
    batch_wait_timeout_s: float = 0.01  # how long a partial batch waits for company
    sampler_replicas: int = 1
    sampler_num_cpus: float = 1.0
    sampler_num_gpus: float = 0.0  # per sampler replica (ray_actor_options num_gpus); with device: cuda
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
        if not self.sampler_num_cpus >= 0 or not self.ingress_num_cpus >= 0 or not self.sampler_num_gpus >= 0:
            raise ValueError("num_cpus and num_gpus must be >= 0")
        if self.max_ongoing_requests < self.max_batch_size:
            raise ValueError(f"max_ongoing_requests ({self.max_ongoing_requests}) must be >= max_batch_size "
                             f"({self.max_batch_size}), or batches can never fill")

    @classmethod
    def from_dict(cls, args: dict[str, Any] | None) -> ServeConfig:
        return from_dict(cls, dict(args or {}), "serve option(s)")

    def follows_alias(self) -> bool:
        """Whether replicas re-resolve the translator's registry alias to pick up promotions."""
        ref = registry_reference(self.translator) if self.translator else None
        return ref is not None and ref[2] is not None and self.reload_interval_s > 0
