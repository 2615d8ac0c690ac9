"""ray_cluster.yaml is valid against Ray's own cluster-launcher schema (checked offline)."""
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent


def test_ray_cluster_yaml_is_valid():
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((REPO / "ray_cluster.yaml").read_text())
    prepared = prepare_config(config)  # fills Ray's defaults, as `ray up` does
    validate_config(prepared)  # jsonschema check against Ray's ray-schema.json
    types = prepared["available_node_types"]
    assert prepared["head_node_type"] in types
    workers = [t for name, t in types.items() if name != prepared["head_node_type"]]
    assert workers and all(t["node_config"]["InstanceType"].startswith(("g", "p")) for t in workers)  # GPU instances
    for t in types.values():  # Ray's schema wants integer resources
        assert all(isinstance(v, int) for v in t.get("resources", {}).values())


def test_cluster_installs_this_package():
    config = yaml.safe_load((REPO / "ray_cluster.yaml").read_text())
    mount = next(remote for remote, local in config["file_mounts"].items() if local == ".")
    assert any(f"pip install -e {mount}" in cmd for cmd in config["setup_commands"])
    assert "pipelines/build_dataset.py" in (REPO / "ray_cluster.yaml").read_text()


def test_the_same_validation_rejects_a_broken_config():
    import pytest
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((REPO / "ray_cluster.yaml").read_text())
    config["available_node_types"]["gpu_worker"]["resources"] = {"GPU": 0.5}
    with pytest.raises(Exception, match="0.5"):
        validate_config(prepare_config(config))
