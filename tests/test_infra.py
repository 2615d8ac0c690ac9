"""infra/: the manifests parse, carry the fields their controllers need, and agree with the package."""
import re
from pathlib import Path

import tomllib
import yaml

REPO = Path(__file__).resolve().parent.parent
INFRA = REPO / "infra"
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


def documents():
    for path in sorted((INFRA / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                yield path.name, doc


def containers(doc):
    """Every container spec in a manifest, wherever the pod template sits."""
    found = []

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "containers" and isinstance(value, list):
                    found.extend(value)
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(doc)
    return found


def dockerfile_image() -> str:
    match = re.search(r"-t (\S+) \.", (INFRA / "Dockerfile").read_text())
    return match.group(1)


def test_every_manifest_has_the_basics():
    docs = list(documents())
    kinds = {doc["kind"] for _, doc in docs}
    assert {"RayCluster", "RayService", "CronJob", "Deployment", "Service", "PersistentVolumeClaim"} <= kinds
    for name, doc in docs:
        assert doc.get("apiVersion") and doc.get("kind") and doc["metadata"].get("name"), name


def test_images_are_the_one_the_dockerfile_builds_for_this_version():
    image = dockerfile_image()
    assert image.endswith(f":{VERSION}")
    images = {c["image"] for _, doc in documents() for c in containers(doc)}
    assert images == {image}


def test_dockerfile_installs_the_package_on_the_ray_version_we_use():
    import ray

    text = (INFRA / "Dockerfile").read_text()
    assert re.search(rf"^FROM rayproject/ray:{re.escape(ray.__version__)}-py3\d+", text, re.M)
    assert "pip install" in text and "COPY" in text
    for folder in ("tron", "pipelines", "infra"):
        assert re.search(rf"COPY .*\b{folder}\b", text), folder


def test_cronjob_submits_the_retrain_entrypoint():
    (doc,) = [d for _, d in documents() if d["kind"] == "CronJob"]
    assert len(doc["spec"]["schedule"].split()) == 5
    assert doc["spec"]["concurrencyPolicy"] == "Forbid"
    (container,) = containers(doc)
    cmd = container["command"]
    assert cmd[:3] == ["ray", "job", "submit"]
    script = next(a for a in cmd if a.endswith(".py"))
    assert script.startswith("/app/") and (REPO / script[len("/app/"):]).is_file()
    config = cmd[cmd.index("--config") + 1]
    assert config.startswith("/app/") and (REPO / config[len("/app/"):]).is_file()
    assert {e["name"] for e in container["env"]} >= {"RAY_AUTH_MODE", "RAY_AUTH_TOKEN"}


def test_retrain_config_is_valid():
    import json

    from pipelines.retrain import PairConfig

    doc = json.loads((INFRA / "retrain.json").read_text())
    from pipelines.train_translator import build_parser
    from tron.components import component_spec

    pairs = [PairConfig(**p) for p in doc["pairs"]]
    assert pairs and all(p.gate.min_judged_accuracy > 0 for p in pairs)
    assert {"zoo:digits", "zoo:shapes", "zoo:faces"} <= {p.generator for p in pairs}
    for pair in pairs:  # every pair names parts that resolve and flags that train_translator.py takes
        component_spec(pair.generator, "generator")
        build_parser().parse_args(["--dataset", "unused", *pair.train_args])


def test_raycluster_has_a_head_and_gpu_workers():
    (doc,) = [d for _, d in documents() if d["kind"] == "RayCluster"]
    assert doc["spec"]["rayVersion"] == __import__("ray").__version__
    assert doc["spec"]["headGroupSpec"]["template"]["spec"]["containers"]
    (group,) = doc["spec"]["workerGroupSpecs"]
    limits = group["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == "1"
    assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]


def test_mlflow_server_deployment():
    (dep,) = [d for _, d in documents() if d["kind"] == "Deployment" and "mlflow" in d["metadata"]["name"]]
    (container,) = containers(dep)
    cmd = container["command"]
    assert cmd[:2] == ["mlflow", "server"] and cmd[cmd.index("--backend-store-uri") + 1].startswith("sqlite:///")
    port = int(cmd[cmd.index("--port") + 1])
    (svc,) = [d for _, d in documents() if d["kind"] == "Service" and d["metadata"]["name"] == dep["metadata"]["name"]]
    assert svc["spec"]["ports"][0]["targetPort"] == port
    env = [e["value"] for _, d in documents() for c in containers(d) for e in c.get("env", []) if e["name"] == "MLFLOW_TRACKING_URI"]
    assert env and all(v == f"http://{svc['metadata']['name']}:{port}" for v in env)


def test_rayservice_serves_the_package_app():
    import importlib

    (doc,) = [d for _, d in documents() if d["kind"] == "RayService"]
    serve = yaml.safe_load(doc["spec"]["serveConfigV2"])
    (app,) = serve["applications"]
    module, _, attr = app["import_path"].partition(":")
    assert callable(getattr(importlib.import_module(module), attr))
    assert app["args"]["translator"].endswith("@champion")
    assert {d["name"] for d in app["deployments"]} == {"TronSampler", "TronIngress"}
    assert doc["spec"]["rayClusterConfig"]["rayVersion"] == __import__("ray").__version__
    local = yaml.safe_load((INFRA / "serve_config.yaml").read_text())
    assert local["applications"][0]["import_path"] == app["import_path"]
