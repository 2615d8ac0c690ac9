"""Thin Ray / MLflow entrypoints over the `tron` library. Each module has `main(argv=None)`."""
