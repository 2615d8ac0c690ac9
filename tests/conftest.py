import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # tests/infra.py

# Ray Train's controller polls its workers every 2 s by default: a tiny training then waits up to
# twice that for its start and end to be noticed, ~5 s of every training the suite runs. Polling at
# 0.5 s changes when, not what, the controller sees (set before any Ray process starts, so the
# clusters, the pipelines run as processes and Ray Train's controller all inherit it).
os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.5")

import pytest
import torch

from tron.translator import Translator, TranslatorConfig
from tron.zoo.digits import DigitsClassifier, DigitsDecoder


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def tiny_generator():
    """A random, frozen digits decoder: the real class at a tiny width."""
    torch.manual_seed(1)
    g = DigitsDecoder(latent_dim=4, width=8).eval()
    for p in g.parameters():
        p.requires_grad_(False)
    return g


@pytest.fixture
def tiny_classifier():
    torch.manual_seed(2)
    f = DigitsClassifier(width=4).eval()
    for p in f.parameters():
        p.requires_grad_(False)
    return f


@pytest.fixture
def tiny_translator():
    torch.manual_seed(3)
    return Translator(TranslatorConfig(cond_dim=10, latent_dim=4, hidden_dim=16, num_blocks=1, num_components=3)).eval()


@pytest.fixture(scope="module")
def s3_endpoint():
    from infra import moto_s3

    with moto_s3() as endpoint:
        yield endpoint


@pytest.fixture(scope="module")
def ray_cluster(s3_endpoint):
    """A real local Ray cluster for one test module, started after the S3 variables are set so
    that its workers inherit them; with the raylet settings of the clusters the commands start (idle
    workers kept, so a module's builds and trainings reuse warm workers)."""
    import ray

    from pipelines.common import LOCAL_SYSTEM_CONFIG

    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False,
             _system_config=LOCAL_SYSTEM_CONFIG)
    yield ray
    ray.shutdown()
