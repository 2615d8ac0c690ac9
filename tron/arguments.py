"""Command-line argument types and the parser of every command (`tron`, the pipelines): bad
arguments print one line and exit with code 2."""
from __future__ import annotations

import argparse
import json
import math
from typing import Any

EXIT_USAGE = 2


class Parser(argparse.ArgumentParser):
    """One-line usage errors with exit code 2; `type=float` arguments must be finite ('nan', 'inf'
    and numbers that overflow to infinity are refused)."""

    def add_argument(self, *args, **kwargs):
        if kwargs.get("type") is float:
            kwargs["type"] = finite_float
        return super().add_argument(*args, **kwargs)

    def error(self, message: str) -> None:  # one line, not usage + traceback
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _integer(text: str, low: int | None = None, what: str = "an integer") -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if low is not None and value < low:
        raise argparse.ArgumentTypeError(f"expected {what}, got {value}")
    return value


def positive_int(text: str) -> int:
    return _integer(text, 1, "a positive integer")


def non_negative_int(text: str) -> int:
    return _integer(text, 0, "an integer >= 0")


def seed_int(text: str) -> int:
    value = _integer(text, 0, "a seed, an integer >= 0")
    if value >= 2**63:
        raise argparse.ArgumentTypeError(f"expected a seed below 2**63, got {value}")
    return value


def finite_float(text: str) -> float:
    """A finite number: 'nan', 'inf' and numbers that overflow to infinity are refused."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def non_negative_float(text: str) -> float:
    value = finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text}")
    return value


def weights(text: str) -> list[float]:
    try:
        return [finite_float(w) for w in text.split(",")]
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected comma-separated finite numbers, e.g. 1,-0.5, got {text!r}") from None


def duration(text: str) -> float:
    """'90s', '30m', '6h', '1d' or plain seconds -> seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        value = float(text[:-1]) * units[text[-1]] if text and text[-1] in units else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a duration like 90s, 30m, 6h or 1d, got {text!r}") from None
    if not value > 0 or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"the duration must be positive, got {text!r}")
    return value


def json_object(text: str) -> dict[str, Any]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r} ({exc})") from None
    if not isinstance(doc, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {type(doc).__name__}")
    return doc


def condition_item(kind: str):
    """--text PROMPT / --image FILE: one (kind, value) item of a condition, in the order given."""
    return lambda value: (kind, value)
