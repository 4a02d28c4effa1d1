"""Old schema versions are upcast on read by pure, numbered functions; the store is never rewritten.

Register ``upcast_<type>_v1_v2`` style functions in UPCASTERS as ``(type, from_version) -> fn``.
The v1 catalogue has no second version yet, so the table is empty; ``upcast`` is the one
entry point every reader (projector, replay, audit) goes through.
"""

from collections.abc import Callable
from typing import Any, Final

from events.catalogue import CATALOGUE

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
UPCASTERS: Final[dict[tuple[str, int], Upcaster]] = {}


def upcast(type_: str, version: int, data: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """Bring a stored payload to its type's latest schema version."""
    latest = CATALOGUE[type_].latest_version if type_ in CATALOGUE else version
    while version < latest:
        data = UPCASTERS[(type_, version)](data)
        version += 1
    return version, data
