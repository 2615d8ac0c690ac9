"""The Ray Serve deployments (Ray is imported here only):

    client --HTTP--> TronIngress (validation, PNG encoding) --handle--> TronSampler (Batcher: a worker thread)

`build_app(config)` builds the FastAPI app for the config (pipelines.serve.api) and an ingress
deployment around it with Serve's documented form, `@serve.ingress(app)`; the app's routes reach the
sampler through `SamplerBackend`, the ingress replica's handle to it. `app_builder(args)` is the same
for a Serve config file (`import_path: pipelines.serve.deployments:app_builder`).
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import asdict
from typing import Any

import torch
from ray import serve
from ray.exceptions import RayActorError
from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError

from tron.allocator import keep_freed_memory
from tron.errors import one_line

from .api import Overloaded, Unavailable, create_app
from .batcher import Batcher
from .config import ServeConfig
from .model import Job, ServedModel
from .promotion import Reload

INGRESS_NAME, SAMPLER_NAME = "TronIngress", "TronSampler"
APP_NAME = "tron"


@serve.deployment(name=SAMPLER_NAME)
class TronSampler:
    """Holds the model; concurrent `generate` calls meet in batches (pipelines.serve.batcher) that
    sample in a worker thread, so `describe` answers while a batch runs."""

    def __init__(self, config: dict) -> None:
        self.config = ServeConfig.from_dict(config)
        # As many torch threads as the replica has CPUs (Ray sets no OMP_NUM_THREADS for it, and torch
        # would take every core of the node, fighting the proxy and the ingress for them).
        torch.set_num_threads(max(1, round(self.config.sampler_num_cpus)))
        keep_freed_memory()  # Langevin batches reuse their activations' memory instead of faulting it in again
        self.model = ServedModel(self.config)
        self.batches = 0
        self.name = serve.get_replica_context().replica_id.unique_id
        self.batcher = Batcher(self._run_batch, self.config.max_batch_size, self.config.batch_wait_timeout_s)
        # Serve runs the constructor on the replica's event loop: the task shares it with the requests.
        self._follower = asyncio.get_running_loop().create_task(self._follow_alias()) \
            if self.config.follows_alias() else None

    async def describe(self) -> dict:
        return self.model.description

    async def _follow_alias(self) -> None:
        """Follow promotions: check the alias every reload_interval_s; fetch and check a new version
        in a thread, then swap it in under the batcher's lock, between batches, so that no request
        sees two translators."""
        log = logging.getLogger("ray.serve")
        while True:
            await asyncio.sleep(self.config.reload_interval_s)
            try:
                reload = await asyncio.to_thread(self.model.fetch_promoted)
            except Exception as exc:  # noqa: BLE001 - e.g. the registry is unreachable: keep serving, retry
                reload = Reload(None, error=f"cannot resolve {self.config.translator}: {type(exc).__name__}: {exc}")
            async with self.batcher.lock:
                message = self.model.apply(reload)
            if message:
                (log.warning if self.model.description["pending_reload_error"] else log.info)(message)

    async def replica(self) -> dict:
        """Which process answers (tests check that bad requests do not restart it)."""
        return {"pid": os.getpid(), "replica": self.name}

    async def generate(self, job: Job) -> dict:
        # The request's deadline counts from its arrival here; its "model" is the one that sampled it.
        return await self.batcher.submit((job, time.perf_counter()))

    def _run_batch(self, items: list[tuple[Job, float]]) -> list[dict]:
        """One batch, in the batcher's worker thread; `batch` names it in every response."""
        self.batches += 1
        outs = self.model.serve([job for job, _ in items], [arrived for _, arrived in items])
        for out in outs:
            out["batch"] = f"{self.name}/{self.batches}"
        return outs


class SamplerBackend:
    """create_app's backend in an ingress replica: the sampler deployment through the replica's handle
    to it (`TronIngress.sampler`, which Serve gives the replica); Serve's errors become Overloaded or
    Unavailable."""

    @staticmethod
    def _handle():
        return serve.get_replica_context().servable_object.sampler

    async def describe(self) -> dict:
        return await self._handle().describe.remote()

    async def generate(self, job: Job) -> dict:
        response = self._handle().generate.remote(job)
        try:
            return await response
        except asyncio.CancelledError:  # the ingress gave up (timeout): drop the queued work too
            response.cancel()
            raise
        except BackPressureError as exc:
            raise Overloaded(one_line(exc)) from None
        except (RayActorError, DeploymentUnavailableError) as exc:
            raise Unavailable(type(exc).__name__) from None


def build_app(config: ServeConfig):
    """The Serve application: TronIngress.bind(TronSampler.bind(...)), options from the config."""
    args = asdict(config)
    app = create_app(config, SamplerBackend())

    @serve.deployment(name=INGRESS_NAME)
    @serve.ingress(app)
    class TronIngress:
        """HTTP in front of the sampler: the routes of `app`, which reach it through `self.sampler`."""

        def __init__(self, sampler) -> None:
            self.sampler = sampler

    bound_sampler = TronSampler.options(
        num_replicas=config.sampler_replicas,
        max_ongoing_requests=config.max_ongoing_requests,
        max_queued_requests=config.max_queued_requests,
        ray_actor_options={"num_cpus": config.sampler_num_cpus,
                           **({"num_gpus": config.sampler_num_gpus} if config.sampler_num_gpus else {})},
    ).bind(args)
    return TronIngress.options(
        max_ongoing_requests=config.ingress_max_ongoing_requests,
        max_queued_requests=config.ingress_max_queued_requests,
        ray_actor_options={"num_cpus": config.ingress_num_cpus},
    ).bind(bound_sampler)


def app_builder(args: dict[str, Any]):
    """For a Serve config's `import_path: pipelines.serve.deployments:app_builder`; `args:` are
    ServeConfig fields."""
    return build_app(ServeConfig.from_dict(args))
