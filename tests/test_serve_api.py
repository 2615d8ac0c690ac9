"""pipelines/serve/api.py without Ray: the FastAPI app over a fake backend. Every bad input is a
4xx with a message, never a 5xx, whatever the body holds (a property-based fuzz of raw bodies)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.serve.api import create_app, strict_json
from pipelines.serve.config import ServeConfig

CONFIG = ServeConfig(max_samples=4, max_steps=50, max_body_bytes=20_000)


class FakeBackend:
    """Answers like a sampler replica of a CLIP world; records the jobs it was given."""

    def __init__(self, conditions=("text", "prompts", "image")) -> None:
        self.jobs = []
        self.model = {"name": "fake", "version": "fake@0", "conditions": list(conditions), "labels": None,
                      "fingerprints": {"translator": "0"}}

    async def describe(self) -> dict:
        return self.model

    async def generate(self, job) -> dict:
        self.jobs.append(job)
        n = job.num_samples
        return {"images": np.zeros((n, 4, 4, 3), np.uint8), "energies": [0.0] * n, "steps": job.steps or 3,
                "timing": {"queue_ms": 0.5, "sample_ms": 1.0, "assembly_ms": 0.1, "init_ms": 0.2, "langevin_ms": 0.6,
                           "decode_ms": 0.1},
                "batch": "fake/1", "runs": 1, "batch_requests": 1, "batch_rows": n, "model": self.model}


@pytest.fixture(scope="module")
def client():
    backend = FakeBackend()
    with TestClient(create_app(CONFIG, backend)) as c:
        c.backend = backend
        yield c


def post_raw(client, body: bytes | str, content_type: str = "application/json"):
    return client.post("/v1/generate", content=body, headers={"content-type": content_type})


def test_a_good_request_reaches_the_backend(client):
    r = post_raw(client, json.dumps({"text": "a red circle", "num_samples": 2, "steps": 5, "seed": 1}))
    assert r.status_code == 200, r.text
    assert len(r.json()["images"]) == 2 and client.backend.jobs[-1].value == "a red circle"


def test_a_label_by_index_or_by_name_reaches_the_backend():
    backend = FakeBackend(conditions=("label",))
    with TestClient(create_app(CONFIG, backend)) as c:
        for label, value in ((3, 3), (3.0, 3), ("  tabby cat ", "tabby cat")):
            r = c.post("/v1/generate", json={"label": label})
            assert r.status_code == 200, r.text
            assert backend.jobs[-1].kind == "label" and backend.jobs[-1].value == value
        for label in (-1, 1.5, "", True, None, [3], "x" * (CONFIG.max_prompt_chars + 1)):
            assert c.post("/v1/generate", json={"label": label}).status_code == 422, label


NON_STANDARD = [
    '{"text": "a", "steps": NaN}', '{"text": "a", "steps": Infinity}', '{"text": "a", "seed": -Infinity}',
    '{"text": "a", "steps": 1e999}', '{"text": "a", "seed": 1e400}', '{"text": "a", "num_samples": -1e999}',
    '{"prompts": [{"text": "a", "weight": NaN}]}', '{"prompts": [{"text": "a", "weight": 1e999}]}',
    '{"prompts": [{"text": "a", "weight": Infinity}]}', '{"text": "a", "seed": ' + "9" * 5000 + "}",
    '{"text": NaN}', "NaN", "Infinity", "1e999",
]
NO_PRINTABLE_PROMPTS = ["\x00\x01\x02", "\u200b\u200c\u200d", "\ufeff", "\t\n\r", "\x1b[31m"[:1], "\u2060\u00ad"]


@pytest.mark.parametrize("body", NON_STANDARD)
def test_non_standard_json_numbers_are_422(client, body):
    r = post_raw(client, body)
    assert r.status_code == 422, (body[:60], r.status_code, r.text[:300])
    assert r.json()["detail"]


@pytest.mark.parametrize("prompt", NO_PRINTABLE_PROMPTS)
def test_prompts_without_printable_content_are_422_like_empty_ones(client, prompt):
    for body in ({"text": prompt}, {"prompts": [{"text": prompt, "weight": 1.0}]}):
        r = post_raw(client, json.dumps(body))
        assert r.status_code == 422 and "empty" in r.text, (body, r.text)


@pytest.mark.parametrize("body,content_type", [
    ("[" * 100_000 + "]" * 100_000, "application/json"),  # deep nesting, under the size limit? no: 413
    ("[" * 5_000 + "]" * 5_000, "application/json"),  # deep nesting under the size limit
    ('{"text": "a", "x": ' + "[" * 3000 + "]" * 3000 + "}", "application/json"),
    (json.dumps({"prompts": [{"text": "a"}] * 2000}), "application/json"),  # a huge array
    (json.dumps({"text": "a", "num_samples": [1] * 3000}), "application/json"),
    ('{"text": "a"}', "text/plain"),  # wrong content types
    ('{"text": "a"}', "application/x-www-form-urlencoded"),
    ("text=a", "application/x-www-form-urlencoded"),
    (b"\xff\xfe\x00{", "application/json"),  # not UTF-8
    ("", "application/json"),
    ('{"text": "a", "text": "b", "label": 1}', "application/json"),
])
def test_odd_bodies_are_4xx(client, body, content_type):
    r = post_raw(client, body, content_type)
    assert 400 <= r.status_code < 500, (str(body)[:60], r.status_code, r.text[:300])


def test_strict_json_parser():
    assert strict_json(b'{"a": 1.5, "b": [1, -2e3]}') == {"a": 1.5, "b": [1, -2000.0]}
    for bad in (b"NaN", b'{"a": Infinity}', b"[-Infinity]", b"1e999", b"[" * 50_000):
        with pytest.raises(ValueError):
            strict_json(bad)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=30)
fields = st.sampled_from(["label", "text", "image", "prompts", "num_samples", "steps", "seed", "weight", "extra"])
requests_like = st.dictionaries(fields, json_values, max_size=5)


@given(body=requests_like | json_values)
@settings(max_examples=300, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
def test_fuzzed_bodies_never_give_a_server_error(client, body):
    # json.dumps writes NaN/Infinity as the non-standard literals: the fuzz covers them too.
    r = post_raw(client, json.dumps(body, allow_nan=True))
    assert r.status_code < 500, (body, r.status_code, r.text[:300])


@given(raw=st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
@settings(max_examples=200, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
def test_fuzzed_raw_bytes_never_give_a_server_error(client, raw):
    assert post_raw(client, raw).status_code < 500
