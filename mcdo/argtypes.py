"""Option types shared by the commands: each turns a bad value into argparse's usage error (exit 2) naming the
option and why, instead of a traceback or a run that does nothing."""
from __future__ import annotations

import argparse
import math
from typing import Callable


def positive_int(text: str) -> int:
    """A whole number of at least 1."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"{n} is not a positive number")
    return n


def positive_float(text: str) -> float:
    """A finite number above 0."""
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(x) or x <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite positive number")
    return x


def probability(text: str) -> float:
    """A dropout rate: a number strictly between 0 and 1."""
    x = positive_float(text)
    if x >= 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not below 1 (a dropout rate)")
    return x


def marglik_or_positive(text: str) -> str | float:
    """'marglik' (fit by the marginal likelihood) or a finite positive prior precision."""
    if text == "marglik":
        return text
    try:
        return positive_float(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither 'marglik' nor a finite positive number") from None


def comma_list(kind: Callable[[str], object]) -> Callable[[str], list]:
    """A comma-separated list of ``kind`` values, at least one."""
    def parse(text: str) -> list:
        values = [kind(v.strip()) for v in text.split(",") if v.strip()]
        if not values:
            raise argparse.ArgumentTypeError("give at least one value (comma-separated)")
        return values

    return parse
