"""Ranges in recipes, and the old spellings recipes may still use.

A range is written `[lo, hi]` everywhere (`objects_per_image: [1, 4]`, `words: [1, 3]`):
one type, `Range(int, ge=0)`, checks that both ends are numbers within the field's bounds
and that lo <= hi, holds a tuple in Python and is saved as a list.

Keys renamed since (`min_words`/`max_words` -> `words`, `placement_tries` ->
`placement_attempts`, ...) keep working: a config's `model_validator(mode="before")`
rewrites them with the helpers below, which warn once (RecipeDeprecationWarning); the
saved recipe.yaml then holds the new spelling.
"""

from __future__ import annotations

import warnings
from typing import Annotated, Any

from pydantic import AfterValidator, Field


class RecipeDeprecationWarning(FutureWarning):
    """A recipe key in an old spelling: still read, rewritten to the new one. A FutureWarning,
    not a DeprecationWarning: Python shows those to whoever runs the program (the recipe is
    theirs), and hides DeprecationWarnings raised outside __main__."""


def _ordered(value: tuple) -> tuple:
    if value[0] > value[1]:
        raise ValueError(f"the first value ({value[0]}) must not exceed the second ({value[1]})")
    return value


def Range(item: type = float, *, ge: float | None = None, gt: float | None = None,  # noqa: N802 - a type
          le: float | None = None, lt: float | None = None) -> Any:
    """The type of a recipe range [lo, hi]: two `item`s within the bounds, lo <= hi."""
    end = Annotated[item, Field(ge=ge, gt=gt, le=le, lt=lt)]
    return Annotated[tuple[end, end], AfterValidator(_ordered)]


def warn_old_spelling(old: str, new: str) -> None:
    warnings.warn(f"{old} is an old spelling, still read; write {new}, as the saved recipe.yaml "
                  "does", RecipeDeprecationWarning, stacklevel=3)


def renamed(data: Any, old: str, new: str) -> Any:
    """For a before-validator: `old: value` read as `new: value`."""
    if not isinstance(data, dict) or old not in data:
        return data
    if new in data:
        raise ValueError(f"give '{new}' only ('{old}' is its old spelling)")
    data = {(new if key == old else key): value for key, value in data.items()}
    warn_old_spelling(f"'{old}'", f"'{new}: {data[new]!r}'")
    return data


def joined_range(data: Any, low: str, high: str, new: str, default: tuple) -> Any:
    """For a before-validator: `low: a, high: b` read as `new: [a, b]`; a missing end is the
    default's."""
    if not isinstance(data, dict) or (low not in data and high not in data):
        return data
    if new in data:
        raise ValueError(f"give '{new}: [lo, hi]' only ('{low}'/'{high}' is its old spelling)")
    data = dict(data)
    value = [data.pop(low, default[0]), data.pop(high, default[1])]
    data[new] = value
    warn_old_spelling(f"'{low}'/'{high}'", f"'{new}: [{value[0]}, {value[1]}]'")
    return data


def symmetric_range(data: Any, old: str, new: str) -> Any:
    """For a before-validator: `old: m` (a half-width, m >= 0) read as `new: [-m, m]`."""
    if not isinstance(data, dict) or old not in data:
        return data
    if new in data:
        raise ValueError(f"give '{new}: [lo, hi]' only ('{old}' is its old spelling)")
    half = data[old]
    if isinstance(half, bool) or not isinstance(half, int | float) or half < 0:
        raise ValueError(f"{old} must be a number >= 0, got {half!r}")
    data = {(new if key == old else key): ([-half, half] if key == old else value)
            for key, value in data.items()}
    warn_old_spelling(f"'{old}: {half}'", f"'{new}: [{-half}, {half}]'")
    return data
