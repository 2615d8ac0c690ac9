"""MLflow URIs for tron (entry points in group `tron.uri_resolvers`): `models:/NAME@alias`,
`models:/NAME/VERSION` and `runs:/RUN_ID/PATH` become local translator directories.

The tracking server is MLFLOW_TRACKING_URI (default: ./mlflow.db)."""
from __future__ import annotations

import tempfile


def download(uri: str) -> str:
    import mlflow

    target = tempfile.mkdtemp(prefix="tron-translator-")
    return mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=target)
