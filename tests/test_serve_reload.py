"""pipelines/serve follows promotion: a sampler started with models:/NAME@champion picks up a
newly promoted champion without dropping requests, and refuses one trained for another encoder.

The registry is real MLflow on SQLite in a temporary directory, reached through MLFLOW_TRACKING_URI
only (set before ray.init, so the replicas inherit it). Three versions of the digits translator:
  v1  the bundled one
  v2  the bundled one with slightly perturbed weights (same G and f fingerprints: it fits)
  v3  the bundled one whose metadata names another encoder (it must be refused)
"""
from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path

import pytest
import requests
import torch

from infra import free_port, processes_named, wait_for
from pipelines.serve.config import ServeConfig
from pipelines.serve.deployments import build_app
from pipelines.serve.model import Job, ServedModel
from pipelines.serve.promotion import Reload

REPO = Path(__file__).resolve().parent.parent
BUNDLED = REPO / "tron" / "zoo" / "weights" / "digits" / "translator"
NAME = "tron-translator.zoo-digits.zoo-digits"  # pipelines.train_translator.registered_model_name for zoo:digits
CHAMPION = f"models:/{NAME}@champion"


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """Versions 1, 2, 3 registered like pipelines.train_translator.register does; champion -> 1."""
    import mlflow

    from tron.checkpoint import fingerprint
    from tron.translator import load_translator, save_translator

    root = tmp_path_factory.mktemp("reload")
    old = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{root / 'mlflow.db'}"
    try:
        perturbed = root / "v2"
        translator = load_translator(BUNDLED)
        rng = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for p in translator.parameters():
                p.add_(1e-3 * torch.randn(p.shape, generator=rng))
        save_translator(translator, perturbed, metadata=translator.metadata)  # keeps G's and f's fingerprints
        foreign = root / "v3"
        shutil.copytree(BUNDLED, foreign)
        doc = json.loads((foreign / "config.json").read_text())
        doc["metadata"]["encoder_fingerprint"] = "0" * 16
        (foreign / "config.json").write_text(json.dumps(doc))

        client = mlflow.MlflowClient()
        experiment = client.create_experiment("serve-reload", artifact_location=(root / "artifacts").as_uri())
        client.create_registered_model(NAME)
        for directory in (BUNDLED, perturbed, foreign):
            meta = json.loads((directory / "config.json").read_text())["metadata"]
            with mlflow.start_run(experiment_id=experiment) as run:
                mlflow.log_artifacts(str(directory), artifact_path="translator")
            client.create_model_version(NAME, f"{run.info.artifact_uri}/translator", run_id=run.info.run_id,
                                        tags={"generator_fingerprint": meta["generator_fingerprint"],
                                              "encoder_fingerprint": meta["encoder_fingerprint"]})
        client.set_registered_model_alias(NAME, "champion", "1")
        yield {"client": client, "fingerprints": {v: fingerprint(d) for v, d in
                                                  (("1", BUNDLED), ("2", perturbed), ("3", foreign))}}
    finally:
        if old is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = old


def promote(registry, version: str) -> None:
    registry["client"].set_registered_model_alias(NAME, "champion", version)  # as pipelines/retrain.py does


# -- without Ray: the steps a replica takes -------------------------------------------------------

def test_served_model_follows_the_alias_and_refuses_a_translator_for_another_encoder(registry):
    promote(registry, "1")
    model = ServedModel(ServeConfig(translator=CHAMPION))
    assert model.description["version"] == f"{NAME}/1" and model.description["pending_reload_error"] is None
    assert model.apply(model.fetch_promoted()) is None  # nothing moved

    promote(registry, "2")
    reload = model.fetch_promoted()
    assert model.description["version"] == f"{NAME}/1"  # fetched, checked, not yet served
    assert "now serving" in model.apply(reload)
    assert model.description["version"] == f"{NAME}/2"
    assert model.description["fingerprints"]["translator"] == registry["fingerprints"]["2"]
    job = Job("label", 3, num_samples=2, steps=3, seed=0)
    (out,) = model.sample([model.condition(job)], [job])
    assert out["model"]["version"] == f"{NAME}/2" and out["images"].shape[0] == 2

    promote(registry, "3")
    reload = model.fetch_promoted()
    assert reload.final and "different encoder" in reload.error
    assert "still serving" in model.apply(reload)
    assert model.description["version"] == f"{NAME}/2" and "different encoder" in model.description["pending_reload_error"]
    assert model.apply(model.fetch_promoted()) is None  # refused once: not fetched or logged again

    # The registry cannot answer: keep serving, say why, clear it once the alias names v2 again.
    assert "still serving" in model.apply(Reload(None, error="cannot resolve: ConnectionError"))
    promote(registry, "2")
    assert "names" in model.apply(model.fetch_promoted())
    assert model.description["version"] == f"{NAME}/2" and model.description["pending_reload_error"] is None


def test_reload_interval_is_validated_and_only_follows_aliases():
    with pytest.raises(ValueError, match="reload_interval_s"):
        ServeConfig(reload_interval_s=-1)
    assert ServeConfig(translator=CHAMPION).follows_alias()
    assert not ServeConfig(translator=CHAMPION, reload_interval_s=0).follows_alias()
    assert not ServeConfig(translator=f"models:/{NAME}/1").follows_alias()
    assert not ServeConfig().follows_alias()


# -- a real Ray cluster with Serve on loopback -------------------------------------------------------

def get_model(url: str) -> dict:
    r = requests.get(f"{url}/v1/model", timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


class Client(threading.Thread):
    """One closed-loop client: a request, its answer, the next request; bounded in count and time."""

    def __init__(self, url: str, first_seed: int, max_requests: int = 300, max_s: float = 90) -> None:
        super().__init__(daemon=True)
        self.url, self.seed, self.max_requests, self.max_s = url, first_seed, max_requests, max_s
        self.stop = threading.Event()
        self.results: list[tuple[int, str | None]] = []  # (status, model version), in order

    def run(self) -> None:
        start = time.monotonic()
        while not self.stop.is_set() and len(self.results) < self.max_requests and time.monotonic() - start < self.max_s:
            seed = self.seed + len(self.results)
            try:
                r = requests.post(f"{self.url}/v1/generate", json={"label": seed % 10, "steps": 10, "seed": seed},
                                  timeout=60)
                version = r.json()["model"]["version"] if r.status_code == 200 else r.text[:200]
                self.results.append((r.status_code, version))
            except requests.RequestException as exc:
                self.results.append((0, repr(exc)))


@pytest.fixture(scope="module")
def served(registry):
    import ray
    from ray import serve

    promote(registry, "1")
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
    session = Path(ray._private.worker._global_node.get_session_dir_path()).name
    port = free_port()
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port, "request_timeout_s": 90})
        config = ServeConfig(translator=CHAMPION, reload_interval_s=0.5, max_batch_size=4, max_ongoing_requests=8,
                             sampler_num_cpus=0.5, request_timeout_s=60)
        serve.run(build_app(config), name="reload", route_prefix="/")
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: requests.get(f"{url}/v1/ready", timeout=10).status_code == 200, 120, "the app is ready")
        yield url
    finally:
        serve.shutdown()
        ray.shutdown()
    # Everything this module started is gone (other Ray sessions on the machine are not ours).
    wait_for(lambda: not processes_named(session), 30, f"the processes of Ray session {session} exit")


def test_serving_follows_promotion_without_dropping_requests(served, registry):
    url = served
    model = get_model(url)
    assert model["version"] == f"{NAME}/1" and model["translator"]["alias"] == "champion"
    assert model["pending_reload_error"] is None
    r = requests.post(f"{url}/v1/generate", json={"label": 7, "steps": 10, "seed": 0}, timeout=60)
    assert r.status_code == 200 and r.json()["model"]["version"] == f"{NAME}/1"
    assert r.json()["model"]["translator_fingerprint"] == registry["fingerprints"]["1"]

    clients = [Client(url, first_seed=1000 * i) for i in range(2)]
    for c in clients:
        c.start()
    try:
        wait_for(lambda: all(c.results for c in clients), 60, "both clients get answers")
        promote(registry, "2")
        wait_for(lambda: get_model(url)["version"] == f"{NAME}/2", 30, "/v1/model reports v2")
        # Every client sees the swap: a few of its answers come from v2.
        wait_for(lambda: all(sum(v == f"{NAME}/2" for _, v in c.results) >= 3 for c in clients), 60,
                 "responses come from v2")
    finally:
        for c in clients:
            c.stop.set()
        for c in clients:
            c.join(70)
    for c in clients:
        assert all(status == 200 for status, _ in c.results), [x for x in c.results if x[0] != 200]
        versions = [v for _, v in c.results]
        first_v2 = versions.index(f"{NAME}/2")
        # One replica: once v2 is served, never v1 again; no other version ever.
        assert set(versions[:first_v2]) == {f"{NAME}/1"} and set(versions[first_v2:]) == {f"{NAME}/2"}, versions
    assert sum(len(c.results) for c in clients) >= 10
    model = get_model(url)
    assert model["fingerprints"]["translator"] == registry["fingerprints"]["2"] and model["pending_reload_error"] is None

    # v3 was trained for another encoder: the service keeps v2 and says why.
    promote(registry, "3")
    model = wait_for(lambda: (m := get_model(url))["pending_reload_error"] and m, 30, "the refusal of v3 is reported")
    assert model["version"] == f"{NAME}/2" and "different encoder" in model["pending_reload_error"]
    assert f"{NAME}/3" in model["pending_reload_error"]
    r = requests.post(f"{url}/v1/generate", json={"label": 2, "steps": 10, "seed": 1}, timeout=60)
    assert r.status_code == 200 and r.json()["model"]["version"] == f"{NAME}/2"
    assert r.json()["model"]["translator_fingerprint"] == registry["fingerprints"]["2"]
