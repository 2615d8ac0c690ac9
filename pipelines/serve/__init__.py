"""Serve TR0N sampling over HTTP with Ray Serve, one concern per module:

    config.py       ServeConfig: the model, per-request caps, batching and queue bounds
    promotion.py    following an MLflow alias to pick up promotions
    model.py        ServedModel: G, f and translators of a world; conditions; batched sampling
    batcher.py      Batcher: concurrent requests meet in batches that sample in a worker thread
    api.py          the FastAPI app: request models, validation, limits (testable without Ray)
    deployments.py  the Ray Serve deployments and build_app / app_builder (Ray is imported here only)
    cli.py          `tron serve` (python -m pipelines.serve)
    page.html       the browser page at /

API (see docs/serve.md; FastAPI serves the OpenAPI schema at /openapi.json and a form at /docs):

    POST /v1/generate   {"label": 7} | {"text": "..."} | {"image": "<base64 PNG>"} |
                        {"prompts": [{"text": "...", "weight": 1.0}, {"image": "...", "weight": -0.5}]}
                        plus "num_samples", "steps", "seed"  ->  base64 PNGs, energies, model, timing
    GET  /v1/health     the ingress answers (liveness)
    GET  /v1/ready      the sampler has loaded its model and answers (readiness)
    GET  /v1/model      names, fingerprints and version of the loaded G, f and translator
    GET  /              a browser page
"""
