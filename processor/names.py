"""Suggesting the registered name a user probably meant (service names are case-sensitive)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def closest_name(name: str, known: Iterable[str]) -> str | None:
    """The known name closest to `name` (a typo, or the same name in another case), or None."""
    names = sorted(set(known))
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    if close:
        return close[0]
    return next((k for k in names if k.lower() == name.lower()), None)
