"""Small helpers that make the tests' expectations explicit to the type checker too."""

from __future__ import annotations

from typing import TypeVar

T = TypeVar("T")


def present(value: T | None, what: str = "the value") -> T:
    """The value, which the test expects to exist (a row's optional link, a .first())."""
    assert value is not None, f"{what} is missing"
    return value
