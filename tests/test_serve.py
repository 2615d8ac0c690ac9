"""pipelines/serve: the Ray Serve sampling API on a real local Ray cluster, over loopback HTTP.

One cluster and three applications serve the whole module:
  main   zoo:digits (labels)        round trips, bad input, the browser page, the schema fuzz
  tight  zoo:digits, 1 + 1 slots    overload answers 503 and recovers; the request timeout
  clip   a tiny random CLIP world   text, image and weighted-prompt round trips; every kind in one batch
                                    while a request runs to its 6 s deadline and the cheap routes answer
  faces  zoo:faces (PyPI models)    ImageNet labels by index and by name; labels and images in one batch
"""
from __future__ import annotations

import base64
import io
import json
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import requests
import torch
from PIL import Image

from infra import free_port
from pipelines.serve.config import ServeConfig
from pipelines.serve.deployments import app_builder, build_app
from pipelines.serve.model import Job, ServedModel
from pipelines.serve.promotion import registry_reference
from tron.errors import CheckpointError
from tron.images import to_uint8

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

MAIN = ServeConfig(max_samples=8, max_steps=100, max_body_bytes=200_000, max_batch_size=8, max_ongoing_requests=16,
                   max_queued_requests=32, sampler_num_cpus=0.5, request_timeout_s=60)
TIGHT = ServeConfig(max_batch_size=1, max_ongoing_requests=1, max_queued_requests=1, max_steps=100_000,
                    sampler_num_cpus=0.3, request_timeout_s=5)


def world_steps(spec: str) -> int:
    """The Langevin steps a world ships as its default (world.json)."""
    from tron.world_config import WORLD_FILE, locate_world

    return json.loads((locate_world(spec) / WORLD_FILE).read_text())["langevin"]["steps"]


def png_b64(array: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def decode_png(text: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(text))))


# -- without Ray: the batched sampler and the model loading ---------------------------------------

@pytest.fixture(scope="module")
def digits_model():
    return ServedModel(ServeConfig())


def test_a_request_in_a_batch_gets_what_it_would_get_alone(digits_model):
    """Per-request seeds: batch mates, their steps and their seeds do not change a request's samples,
    which are those of Sampler.sample (i.e. `tron sample`)."""
    m = digits_model
    jobs = [Job("label", 3, num_samples=3, steps=6, seed=0), Job("label", 7, num_samples=2, steps=2, seed=5),
            Job("label", 1, num_samples=1, steps=0, seed=9)]
    conditions = [m.condition(j) for j in jobs]
    batched = m.sample(conditions, jobs)
    alone = m.sample(conditions[:1], jobs[:1])
    for job, c, out in zip(jobs, conditions, batched):
        ref = m.sampler.sample(c.c, job.num_samples, replace(m.world.langevin, steps=job.steps), seed=job.seed)
        assert np.abs(out["images"].astype(int) - to_uint8(ref.images).astype(int)).max() <= 1
        assert torch.allclose(torch.tensor(out["energies"]), ref.energies, atol=1e-5)
    assert np.array_equal(batched[0]["images"], alone[0]["images"])
    expired = m.sample(conditions[:2], jobs[:2], deadlines=[0.0, 1e18])
    assert expired[0]["error"] == "timed out" and np.array_equal(expired[1]["images"], batched[1]["images"])


def test_model_description_names_fingerprints_and_version(digits_model):
    d = digits_model.description
    assert d["name"] == "digits" and d["conditions"] == ["label"] and d["labels"] == [str(i) for i in range(10)]
    assert set(d["fingerprints"]) == {"generator", "encoder", "translator"}
    assert d["version"] == f"digits@{d['fingerprints']['translator']}"
    assert registry_reference("models:/tron-digits@champion") == ("tron-digits", None, "champion")
    assert registry_reference("models:/tron-digits/3") == ("tron-digits", "3", None)
    assert registry_reference("/some/dir") is None


def test_zoo_shapes_takes_text_images_and_prompts():
    """The shipped CLIP world, without Ray: the same ServedModel a sampler replica holds."""
    model = ServedModel(ServeConfig(world="zoo:shapes"))
    assert model.description["conditions"] == ["text", "prompts", "image"]
    jobs = [Job("text", "a small red circle in the top left", num_samples=2, steps=3, seed=0),
            Job("prompts", [("text", "a red circle", 1.0), ("text", "a large shape", -0.5)], num_samples=1, steps=3)]
    conditions = [model.condition(j) for j in jobs]
    image = model.sample(conditions[:1], jobs[:1])[0]["images"][0]  # (H, W, 3) uint8
    jobs.append(Job("image", image, num_samples=1, steps=3))
    conditions.append(model.condition(jobs[-1]))
    outs = model.sample(conditions, jobs)
    assert [len(o["images"]) for o in outs] == [2, 1, 1] and outs[0]["images"].shape[-1] == 3


def test_a_replica_refuses_an_unverified_translator_unless_its_config_accepts_it(tmp_path, caplog):
    """The Serve replica's model, as `tron serve --accept-unverified-translator` or a Serve YAML's
    `accept_unverified_translator: true` configures it: refused by default; accepted, it says so in
    its log and in GET /v1/model's `verified`."""
    from pipelines.serve.cli import config_from_args, parse_args

    bare = tmp_path / "bare"
    shutil.copytree(REPO / "tron" / "zoo" / "weights" / "digits" / "translator", bare)
    doc = json.loads((bare / "config.json").read_text())
    doc["metadata"] = {}
    (bare / "config.json").write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match="records no generator and no encoder fingerprint"):
        ServedModel(ServeConfig(translator=str(bare)))
    config = ServeConfig.from_dict({"translator": str(bare), "accept_unverified_translator": True})
    assert config == config_from_args(parse_args(["--translator", str(bare), "--accept-unverified-translator"]))
    with caplog.at_level("WARNING", logger="tron.world"):
        model = ServedModel(config)
    assert model.description["verified"] is False and "UNVERIFIED" in caplog.text
    assert ServedModel(ServeConfig()).description["verified"] is True


def test_config_rejects_unknown_options_and_unfillable_batches():
    with pytest.raises(ValueError, match="unknown serve option"):
        ServeConfig.from_dict({"wrold": "zoo:digits"})
    with pytest.raises(ValueError, match="batches can never fill"):
        ServeConfig(max_batch_size=16, max_ongoing_requests=4)


def test_serve_config_yaml_is_a_valid_serve_config():
    import yaml
    from ray.serve.schema import ServeDeploySchema

    doc = yaml.safe_load((REPO / "infra" / "serve_config.yaml").read_text())
    schema = ServeDeploySchema.model_validate(doc)
    (app,) = schema.applications
    assert app.import_path == "pipelines.serve.deployments:app_builder"
    assert {d.name for d in app.deployments} == {"TronIngress", "TronSampler"}
    sampler = next(d for d in app.deployments if d.name == "TronSampler")
    assert sampler.autoscaling_config and sampler.max_queued_requests > 0 and sampler.ray_actor_options.num_cpus > 0
    config = ServeConfig.from_dict(app.args)
    assert sampler.max_ongoing_requests >= config.max_batch_size
    assert app_builder(app.args) is not None


def test_translator_from_the_registry_by_alias(tmp_path, monkeypatch):
    """models:/NAME@alias loads through MLflow; the version it reports is the alias's version; a
    translator trained for another G or f is refused."""
    import mlflow

    # Through the environment only, as a replica would see it (no process-wide set_tracking_uri).
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    client = mlflow.MlflowClient()
    bundled = REPO / "tron" / "zoo" / "weights" / "digits" / "translator"
    foreign = tmp_path / "foreign"
    shutil.copytree(bundled, foreign)
    doc = json.loads((foreign / "config.json").read_text())
    doc["metadata"]["generator_fingerprint"] = "0" * 16
    (foreign / "config.json").write_text(json.dumps(doc))
    mlflow.set_experiment("serve-test")
    client.create_registered_model("tron-digits")
    for directory in (bundled, foreign):
        with mlflow.start_run() as run:
            mlflow.log_artifacts(str(directory), artifact_path="translator")
        client.create_model_version("tron-digits", f"{run.info.artifact_uri}/translator", run_id=run.info.run_id)
    client.set_registered_model_alias("tron-digits", "champion", "1")
    client.set_registered_model_alias("tron-digits", "broken", "2")

    model = ServedModel(ServeConfig(translator="models:/tron-digits@champion"))
    assert model.description["version"] == "tron-digits/1"
    assert model.description["translator"]["alias"] == "champion"
    assert model.description["fingerprints"]["translator"] == ServedModel(ServeConfig()).description["fingerprints"]["translator"]
    with pytest.raises(CheckpointError, match="different generator"):
        ServedModel(ServeConfig(translator="models:/tron-digits@broken"))


# -- a real Ray cluster with Serve on loopback -----------------------------------------------------

@pytest.fixture(scope="module")
def clip_world(tmp_path_factory):
    """A random tiny CLIP world: shapes-style G (RGB 32x32), an open_clip f, a translator that fits them."""
    from tron.checkpoint import fingerprint
    from tron.clip import create_open_clip, save_open_clip
    from tron.generators import save_generator
    from tron.translator import Translator, TranslatorConfig, save_translator
    from tron.zoo.shapes import ShapesGenerator

    tiny = {"embed_dim": 8,
            "vision_cfg": {"image_size": 32, "patch_size": 8, "width": 16, "layers": 1, "head_width": 8, "mlp_ratio": 2.0},
            "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 8, "heads": 1, "layers": 1, "mlp_ratio": 2.0}}
    root = tmp_path_factory.mktemp("clip-world")
    torch.manual_seed(0)
    save_generator(ShapesGenerator(latent_dim=8, width=4).eval(), root / "generator")
    encoder = create_open_clip("tron-serve-test-clip", tiny, root / "encoder")
    save_open_clip(encoder, root / "encoder")
    fingerprints = {"generator_fingerprint": fingerprint(root / "generator"), "encoder_fingerprint": fingerprint(root / "encoder")}
    for name in ("translator", "translator-text"):  # text prompts have a translator of their own, as in zoo:shapes
        translator = Translator(TranslatorConfig(cond_dim=8, latent_dim=8, hidden_dim=16, num_blocks=1, num_components=2))
        save_translator(translator, root / name, metadata=fingerprints)
    (root / "world.json").write_text(json.dumps({"name": "tiny-clip", "description": "random weights",
                                                 "translators": {"default": "translator", "text": "translator-text"},
                                                 "langevin": {"steps": 3, "step_size": 0.1, "noise_std": 0.01,
                                                              "candidates": 2}}))
    return root


def every_kind(image: str) -> list[dict]:
    """Requests of every kind a CLIP world takes, with their own seeds, sizes and step counts."""
    return [{"text": "a small red circle", "num_samples": 2, "steps": 4, "seed": 1},
            {"image": image, "num_samples": 1, "steps": 2, "seed": 2},
            {"prompts": [{"text": "a red circle", "weight": 1.0}, {"text": "a square", "weight": -0.5}], "seed": 3},
            {"prompts": [{"text": "a blue square", "weight": 1.0}, {"image": image, "weight": 0.5}], "num_samples": 3,
             "steps": 0, "seed": 4},
            {"prompts": [{"image": image, "weight": 1.0}], "num_samples": 2, "seed": 5}]


def test_requests_of_every_kind_run_as_one_langevin_batch_and_keep_their_own_samples(clip_world, monkeypatch):
    """Text (its own translator), images, weighted prompts: one Sampler.run, every request's z0 from
    its kind's translator, and the samples each would get alone."""
    from tron.sampler import Sampler

    model = ServedModel(ServeConfig(world=str(clip_world)))
    assert model.sampler_for("text").translator is not model.sampler_for("image").translator
    image = png_b64((np.random.default_rng(0).random((32, 32, 3)) * 255).astype(np.uint8))
    bodies = every_kind(image)
    jobs = []
    for body in bodies:
        kind = next(k for k in ("text", "image", "prompts") if k in body)
        value = decode_png(body[kind]) if kind == "image" else body[kind]
        if kind == "prompts":
            value = [("text", p["text"], p["weight"]) if "text" in p else ("image", decode_png(p["image"]), p["weight"])
                     for p in value]
        jobs.append(Job(kind, value, num_samples=body.get("num_samples", 1), steps=body.get("steps"), seed=body["seed"]))
    runs = []
    real_run = Sampler.run
    monkeypatch.setattr(Sampler, "run", lambda self, groups, *a, **k: runs.append(len(groups)) or real_run(self, groups, *a, **k))
    batched = model.serve(jobs, [time.perf_counter()] * len(jobs))
    assert runs == [len(jobs)] and {out["runs"] for out in batched} == {1}
    assert {out["batch_requests"] for out in batched} == {len(jobs)} and batched[0]["batch_rows"] == 9
    assert set(batched[0]["timing"]) == {"queue_ms", "assembly_ms", "init_ms", "langevin_ms", "decode_ms", "sample_ms"}
    for job, out in zip(jobs, batched):
        (alone,) = model.serve([job], [time.perf_counter()])
        assert out["images"].shape[0] == job.num_samples and out["steps"] == (3 if job.steps is None else job.steps)
        assert np.abs(out["images"].astype(int) - alone["images"].astype(int)).max() <= 1
        assert np.allclose(out["energies"], alone["energies"], atol=1e-5)
    c = model.condition(jobs[0])
    ref = model.sampler_for("text").sample(c.c, 2, replace(model.world.langevin, steps=4), seed=1)  # the text translator's
    assert np.abs(batched[0]["images"].astype(int) - to_uint8(ref.images).astype(int)).max() <= 1
    default = model.sampler.sample(c.c, 2, replace(model.world.langevin, steps=4), seed=1)
    assert not torch.allclose(default.latents, ref.latents)  # so the translator made the difference


def wait_ready(url: str, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while True:
        try:
            if requests.get(f"{url}/v1/ready", timeout=10).status_code == 200:
                return
        except requests.RequestException:
            pass
        if time.time() > deadline:
            raise TimeoutError(f"{url} not ready")
        time.sleep(0.5)


@pytest.fixture(scope="module")
def served(clip_world):
    import ray
    from ray import serve

    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
    port = free_port()
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port, "request_timeout_s": 90})
        apps = [("main", "", MAIN), ("tight", "/tight", TIGHT),
                ("clip", "/clip", ServeConfig(world=str(clip_world), max_samples=4, max_steps=100_000, sampler_num_cpus=0.3,
                                              max_image_side=64, request_timeout_s=6)),
                # A long wait for company: concurrent requests meet in one batch however loaded the machine is.
                ("faces", "/faces", ServeConfig(world="zoo:faces", max_samples=2, max_steps=5, sampler_num_cpus=0.3,
                                                batch_wait_timeout_s=0.5))]
        serve.run_many([serve.RunTarget(build_app(config), name=name, route_prefix=prefix or "/")  # side by side
                        for name, prefix, config in apps])
        urls = {name: f"http://127.0.0.1:{port}{prefix}" for name, prefix, _ in apps}
        for url in urls.values():
            wait_ready(url)
        yield urls
    finally:
        serve.shutdown()
        ray.shutdown()


def post(url: str, body, **kwargs) -> requests.Response:
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return requests.post(f"{url}/v1/generate", data=data, headers={"content-type": "application/json"},
                         timeout=kwargs.pop("timeout", 60), **kwargs)


def test_label_round_trip_is_deterministic_per_seed(served):
    url = served["main"]
    r = post(url, {"label": 7, "num_samples": 3, "steps": 20, "seed": 11})
    assert r.status_code == 200, r.text
    body = r.json()
    images = [decode_png(b) for b in body["images"]]
    assert len(images) == 3 and all(im.shape == (16, 16) and im.dtype == np.uint8 for im in images)
    assert len(body["energies"]) == 3 and all(isinstance(e, float) for e in body["energies"])
    assert body["steps"] == 20 and body["seed"] == 11 and body["condition"] == "label 7"
    assert body["model"]["name"] == "digits" and body["model"]["version"].startswith("digits@")
    assert {"total_ms", "wait_ms", "queue_ms", "sample_ms", "assembly_ms", "init_ms", "langevin_ms", "decode_ms",
            "encode_ms", "transfer_ms", "batch", "batch_requests", "batch_rows", "batch_runs"} == set(body["timing"])
    again = post(url, {"label": 7, "num_samples": 3, "steps": 20, "seed": 11}).json()
    assert again["images"] == body["images"]
    other = post(url, {"label": 7, "num_samples": 3, "steps": 20, "seed": 12}).json()
    assert other["images"] != body["images"]
    default = post(url, {"label": 2}).json()
    assert default["steps"] == world_steps("zoo:digits") and len(default["images"]) == 1


def test_concurrent_requests_share_batches_and_keep_their_own_samples(served):
    url = served["main"]
    alone = post(url, {"label": 4, "num_samples": 2, "steps": 30, "seed": 3}).json()
    bodies = [{"label": i % 10, "num_samples": 2, "steps": 30, "seed": 3} for i in range(8)]
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda b: post(url, b), bodies))
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    assert max(r.json()["timing"]["batch_requests"] for r in responses) > 1  # they met in a batch
    sizes = {}
    for r in responses:
        sizes.setdefault(r.json()["timing"]["batch"], []).append(r.json()["timing"]["batch_requests"])
    assert all(len(v) == n for v in sizes.values() for n in v)  # a batch's size is the number of its requests
    assert responses[4].json()["images"] == alone["images"]  # same label 4, seed 3: batch mates change nothing


def test_faces_world_takes_imagenet_labels_by_index_and_by_name(served):
    """`tron serve --world zoo:faces`: the face GAN and EfficientNet-Lite0 from their packages; a
    class by name is the class by index, and a name that is not a class is a 422 naming close ones."""
    from tron.adapters.efficientnet import imagenet_class_names

    url = served["faces"]
    model = requests.get(f"{url}/v1/model", timeout=30).json()
    assert model["name"] == "faces" and model["labels"] == imagenet_class_names() and model["image_shape"] == [3, 64, 64]
    by_name = post(url, {"label": " sunglass ", "num_samples": 2, "steps": 1, "seed": 4})
    assert by_name.status_code == 200, by_name.text
    assert by_name.json()["condition"] == "label 'sunglass'"
    images = [decode_png(b) for b in by_name.json()["images"]]
    assert [im.shape for im in images] == [(64, 64, 3)] * 2 and images[0].std() > 10  # a picture, not a flat image
    by_index = post(url, {"label": imagenet_class_names().index("sunglass"), "num_samples": 2, "steps": 1, "seed": 4})
    assert by_index.json()["images"] == by_name.json()["images"]
    misspelt = post(url, {"label": "sunglases", "steps": 1})
    assert misspelt.status_code == 422 and "close" in misspelt.json()["detail"] and "sunglass" in misspelt.json()["detail"]
    assert post(url, {"label": 1000, "steps": 1}).status_code == 422


def test_labels_and_images_of_a_classifier_world_share_a_batch_in_two_runs(served):
    """zoo:faces takes labels (f's class space) and images (its feature space, a translator of its
    own): concurrent requests of both kinds share one batch, which runs once per space."""
    url = served["faces"]
    image = png_b64((np.random.default_rng(1).random((64, 64, 3)) * 255).astype(np.uint8))
    bodies = [{"label": "sunglass", "steps": 1, "seed": 1}, {"image": image, "steps": 1, "seed": 2},
              {"prompts": [{"image": image, "weight": 1.0}], "num_samples": 2, "steps": 0, "seed": 3}]
    with ThreadPoolExecutor(len(bodies)) as pool:
        responses = list(pool.map(lambda b: post(url, b), bodies))
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    timing = [r.json()["timing"] for r in responses]
    assert len({t["batch"] for t in timing}) == 1 and timing[0]["batch_requests"] == 3
    assert timing[0]["batch_rows"] == 4 and timing[0]["batch_runs"] == 2  # labels | image features


def clip_url(served) -> str:
    return served["clip"]


def test_text_image_and_weighted_prompts_round_trip(served):
    url = clip_url(served)
    model = requests.get(f"{url}/v1/model", timeout=10).json()
    assert model["conditions"] == ["text", "prompts", "image"] and model["labels"] is None
    text = post(url, {"text": "a small red circle", "num_samples": 2, "seed": 1})
    assert text.status_code == 200, text.text
    images = [decode_png(b) for b in text.json()["images"]]
    assert len(images) == 2 and images[0].shape == (32, 32, 3)
    assert post(url, {"text": "  a small   red circle ", "num_samples": 2, "seed": 1}).json()["images"] == text.json()["images"]
    image = post(url, {"image": text.json()["images"][0], "steps": 2})
    assert image.status_code == 200, image.text
    prompts = post(url, {"prompts": [{"text": "a red circle", "weight": 1.0}, {"text": "a large square", "weight": -0.5},
                                     {"image": text.json()["images"][1], "weight": 0.3}], "num_samples": 2})
    assert prompts.status_code == 200, prompts.text
    assert prompts.json()["condition"].startswith("1 x 'a red circle' + -0.5 x 'a large square'")
    cancel = post(url, {"prompts": [{"text": "a red circle", "weight": 1.0}, {"text": "a red circle", "weight": -1.0}]})
    assert cancel.status_code == 422 and "cancel" in cancel.json()["detail"]
    wrong = post(url, {"label": 3})
    assert wrong.status_code == 422 and "takes text" in wrong.json()["detail"]
    huge = np.zeros((65, 65, 3), dtype=np.uint8)
    assert post(url, {"image": png_b64(huge)}).status_code == 422
    assert post(url, {"image": base64.b64encode(b"not an image").decode()}).status_code == 422


def test_requests_of_every_kind_share_one_batch_while_cheap_routes_answer(served):
    """While a request that runs to its deadline holds the sampler, /v1/ready, /v1/model and
    /v1/health answer 200, and requests of every kind wait together to share the next batch
    (from the responses' own timing fields) and get the images each gets alone."""
    url = clip_url(served)
    image = post(url, {"text": "a blue circle", "steps": 0}).json()["images"][0]
    bodies = every_kind(image)
    alone = [post(url, body).json() for body in bodies]
    assert [a["timing"]["batch_requests"] for a in alone] == [1] * len(bodies)
    with ThreadPoolExecutor(len(bodies) + 1) as pool:
        heavy = pool.submit(post, url, {"text": "a green triangle", "steps": 100_000})  # runs to the 6 s deadline
        start, together, cheap = time.time(), None, []
        while not heavy.done():
            cheap += [requests.get(f"{url}/v1/{route}", timeout=30).status_code for route in ("ready", "model", "health")]
            if together is None and time.time() - start > 2:  # heavy holds the sampler now; these have 2 s to spare
                together = [pool.submit(post, url, body) for body in bodies]
            time.sleep(0.2)
        assert together is not None, "the heavy request ended within 2 s"
        together = [f.result() for f in together]
    assert heavy.result().status_code == 504
    assert len(cheap) >= 9 and set(cheap) == {200}, cheap
    assert all(r.status_code == 200 for r in together), [r.text for r in together]
    timing = [r.json()["timing"] for r in together]
    assert len({t["batch"] for t in timing}) == 1 and timing[0]["batch_runs"] == 1  # one batch, one Langevin run
    assert timing[0]["batch_requests"] in (len(bodies), len(bodies) + 1)  # + the heavy one, had it not started yet
    assert timing[0]["queue_ms"] > 0 and timing[0]["langevin_ms"] > 0
    for r, a in zip(together, alone):
        mine = [decode_png(b).astype(int) for b in r.json()["images"]]
        assert len(mine) == len(a["images"])
        assert max(np.abs(m - decode_png(b).astype(int)).max() for m, b in zip(mine, a["images"])) <= 1


BAD_REQUESTS = [
    ({}, "exactly one"),
    ({"label": 3, "text": "a 3"}, "exactly one"),
    ({"text": ""}, "at least 1 character"),
    ({"text": "   "}, "empty"),
    ({"text": "x" * 201}, "at most 200"),
    ({"label": 10}, "out of range"),
    ({"label": -1}, "greater than or equal to 0"),
    ({"label": "three"}, "not a class name"),  # a string is a class name ("3" is class 3)
    ({"label": 3.5}, "fractional part"),
    ({"label": None}, "valid integer"),
    ({"label": True}, "valid integer"),
    ({"label": 3, "num_samples": 9}, "less than or equal to 8"),
    ({"label": 3, "num_samples": 0}, "greater than or equal to 1"),
    ({"label": 3, "steps": 101}, "less than or equal to 100"),
    ({"label": 3, "steps": -1}, "greater than or equal to 0"),
    ({"label": 3, "seed": -1}, "greater than or equal to 0"),
    ({"label": 3, "seed": 2**64}, "less than or equal to"),
    ({"label": 3, "num_samples": "many"}, "valid integer"),
    ({"label": 3, "colour": "red"}, "Extra inputs"),
    ({"text": "a red circle"}, "takes labels (0..9), not text"),
    ({"image": "!!not base64!!"}, "not valid base64"),
    ({"image": base64.b64encode(b"GIF89a").decode()}, "image: not a readable PNG image"),
    ({"prompts": []}, "at least 1 item"),
    ({"prompts": [{"text": "a", "weight": "heavy"}]}, "valid number"),
    ("{not json", "JSON decode error"),
    ('{"label": 3, "steps": NaN}', "NaN is not valid JSON"),
    ('{"label": 3, "seed": Infinity}', "Infinity is not valid JSON"),
    ('{"label": 3, "num_samples": 1e999}', "out of range"),
    ('{"label": 3, "seed": -Infinity}', "not valid JSON"),
    ('{"label": 3, "steps": ' + "9" * 400 + "}", "out of range"),
    ('[' * 3000 + ']' * 3000, "nested too deeply"),
    ('{"text": "\\u200b\\u200d"}', "empty"),
    ("[1, 2]", "valid dictionary"),
    ("null", "valid dictionary"),
]


def test_bad_requests_get_clear_4xx_and_never_take_the_replica_down(served):
    from ray import serve

    url = served["main"]
    sampler = serve.get_deployment_handle("TronSampler", app_name="main")
    before = sampler.replica.remote().result()
    for body, expected in BAD_REQUESTS:
        r = post(url, body)
        assert r.status_code == 422, (body, r.status_code, r.text)
        assert expected in r.text, (body, r.text)
    too_big = post(url, {"label": 3, "text": "x" * 300_000})
    assert too_big.status_code == 413 and "body over 200000 bytes" in too_big.json()["detail"]
    chunked = requests.post(f"{url}/v1/generate", data=iter([b'{"label": 3, "text": "', b"x" * 150_000, b"x" * 150_000]),
                            headers={"content-type": "application/json"}, timeout=30)
    assert chunked.status_code == 413
    assert requests.get(f"{url}/v1/generate", timeout=10).status_code == 405
    assert requests.get(f"{url}/v2/generate", timeout=10).status_code == 404
    assert sampler.replica.remote().result() == before  # the same process answers
    assert post(url, {"label": 3}).status_code == 200


def test_health_ready_model_and_openapi(served):
    url = served["main"]
    assert requests.get(f"{url}/v1/health", timeout=10).json() == {"status": "ok"}
    ready = requests.get(f"{url}/v1/ready", timeout=10).json()
    model = requests.get(f"{url}/v1/model", timeout=10).json()
    assert ready["ready"] is True and ready["version"] == model["version"]
    assert model["limits"]["max_samples"] == 8 and model["langevin"]["steps"] == world_steps("zoo:digits")
    spec = requests.get(f"{url}/openapi.json", timeout=10).json()
    assert {"/v1/generate", "/v1/health", "/v1/ready", "/v1/model"} <= set(spec["paths"])
    request_schema = spec["components"]["schemas"]["GenerateRequest"]
    assert request_schema["properties"]["num_samples"]["maximum"] == 8
    assert request_schema["additionalProperties"] is False
    assert {"413", "422", "503", "504"} <= set(spec["paths"]["/v1/generate"]["post"]["responses"])


def test_overload_answers_503_then_recovers(served):
    """One running + one queued request fit the tight app; the rest of a burst is refused at once.
    (An admitted request may still meet the app's 5 s timeout on a heavily loaded machine: 504 is
    a bounded answer too; what must not happen is a growing queue or a 500.)"""
    url = served["tight"]
    body = {"label": 1, "steps": 60}
    with ThreadPoolExecutor(12) as pool:
        responses = list(pool.map(lambda _: post(url, body), range(12)))
    codes = sorted(r.status_code for r in responses)
    assert set(codes) <= {200, 503, 504} and codes.count(503) >= 6 and codes.count(503) < 12, codes
    refused = next(r for r in responses if r.status_code == 503)
    assert refused.headers.get("retry-after") == "1" and "overloaded" in refused.json()["detail"]
    time.sleep(0.5)
    assert post(url, {"label": 1, "steps": 5}).status_code == 200  # recovered


def test_request_timeout_answers_504_and_frees_the_sampler(served):
    url = served["tight"]
    t0 = time.time()
    r = post(url, {"label": 1, "steps": 100_000})
    assert r.status_code == 504 and "5 s" in r.json()["detail"]
    assert time.time() - t0 < 15
    t0 = time.time()
    assert post(url, {"label": 1, "steps": 5}).status_code == 200  # the abandoned chain stopped at its deadline
    assert time.time() - t0 < 4


def test_schema_fuzz_finds_no_server_error(served):
    """Property-based requests from the OpenAPI schema (valid and invalid): never a 5xx."""
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, given, settings
    from schemathesis.checks import content_type_conformance, not_a_server_error, response_schema_conformance, status_code_conformance

    url = served["main"]
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    statuses = []
    for result in schema.get_all_operations():
        operation = result.ok()
        post = operation.method.upper() == "POST"
        for mode in ("positive", "negative") if post else ("positive",):  # the GETs take no input to corrupt
            strategy = operation.as_strategy(generation_mode=schemathesis.GenerationMode(mode))

            @given(case=strategy)
            @settings(max_examples=60 if post else 3, deadline=None, derandomize=True, database=None,
                      suppress_health_check=list(HealthCheck))
            def fuzz(case):
                response = case.call(base_url=url, timeout=60)
                statuses.append(response.status_code)
                # Responses must also be documented and match their schema; 4xx for bad input is the point.
                case.validate_response(response, checks=[not_a_server_error, status_code_conformance,
                                                         response_schema_conformance, content_type_conformance])

            fuzz()
    assert max(statuses) < 500 and statuses.count(200) >= 3  # the fuzz reached the sampler, not only validation


# -- the browser page in headless Chromium -----------------------------------------------------

class Chromium:
    """Headless Chromium driven over the DevTools protocol (websockets only, no extra packages)."""

    def __init__(self, url: str) -> None:
        self.profile = tempfile.mkdtemp(prefix="tron-chromium-")
        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-dev-shm-usage", f"--user-data-dir={self.profile}", "--remote-debugging-address=127.0.0.1",
             "--remote-debugging-port=0", url],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = Path(self.profile) / "DevToolsActivePort"  # Chromium writes its chosen port here
        deadline = time.time() + 60
        while not (port_file.is_file() and port_file.read_text().count("\n") >= 1):
            if self.proc.poll() is not None or time.time() > deadline:
                self.close()
                raise RuntimeError("chromium did not start")
            time.sleep(0.2)
        port = int(port_file.read_text().split()[0])
        while True:  # the first tab may take a moment to appear
            pages = [t for t in requests.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json() if t["type"] == "page"]
            if pages or time.time() > deadline:
                break
            time.sleep(0.2)
        if not pages:
            self.close()
            raise RuntimeError("chromium opened no page")
        page = pages[0]
        from websockets.sync.client import connect

        self.ws = connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=30)
        self.next_id = 0

    def evaluate(self, expression: str):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": "Runtime.evaluate",
                                 "params": {"expression": expression, "returnByValue": True, "awaitPromise": True}}))
        while True:
            message = json.loads(self.ws.recv(timeout=60))
            if message.get("id") == self.next_id:
                result = message["result"]
                if "exceptionDetails" in result:
                    raise RuntimeError(result["exceptionDetails"])
                return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 60):
        deadline, error = time.time() + timeout, None
        while time.time() < deadline:
            try:
                value = self.evaluate(expression)
            except RuntimeError as exc:  # e.g. the page is still loading
                value, error = None, exc
            if value:
                return value
            time.sleep(0.2)
        raise TimeoutError(f"never true in the page: {expression} (last error: {error})")

    def close(self) -> None:
        if getattr(self, "ws", None) is not None:
            self.ws.close()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)


@pytest.mark.skipif(CHROMIUM is None, reason="needs the chromium browser: apt-get install -y chromium")
def test_browser_page_shows_images_model_and_timing(served):
    pytest.importorskip("websockets.sync.client")
    browser = Chromium(served["main"] + "/")
    try:
        browser.wait_for("!document.getElementById('generate').disabled")
        assert "digits" in browser.evaluate("document.getElementById('model').textContent")
        browser.evaluate("document.getElementById('label').value = '7';"
                         "document.getElementById('num_samples').value = '3';"
                         "document.getElementById('generate').click(); true")
        count = browser.wait_for("Array.from(document.querySelectorAll('#results img.sample'))"
                                 ".filter(i => i.complete && i.naturalWidth === 16).length === 3 && 3")
        assert count == 3
        timing = browser.evaluate("document.getElementById('timing').textContent")
        assert "3 images of label 7 from digits" in timing and "ms" in timing
        assert browser.evaluate("document.getElementById('error').textContent") == ""
        browser.evaluate("document.getElementById('steps').value = '1000'; document.getElementById('generate').click(); true")
        assert "HTTP 422" in browser.wait_for("document.getElementById('error').textContent")
    finally:
        browser.close()


@pytest.mark.skipif(CHROMIUM is None, reason="needs the chromium browser: apt-get install -y chromium")
def test_browser_page_takes_a_text_prompt(served):
    pytest.importorskip("websockets.sync.client")
    browser = Chromium(clip_url(served) + "/?text=a%20red%20circle&num_samples=2&auto=1")
    try:
        browser.wait_for("document.querySelectorAll('#results img.sample').length === 2")
        assert "text 'a red circle'" in browser.evaluate("document.getElementById('timing').textContent")
        assert browser.evaluate("document.getElementById('text-field').hidden") is False
    finally:
        browser.close()
