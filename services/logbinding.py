"""Binding published figures to the signed log: the checkpoint whose tree holds their position."""

import orjson

from events.store import Connection
from events.treestore import covering_checkpoint
from schemas.log import CheckpointRef


async def covering(conn: Connection, position: int) -> CheckpointRef | None:
    """The first signed checkpoint whose tree holds ``position`` (None until the integrator signs one)."""
    found = await covering_checkpoint(conn, position)
    return CheckpointRef(tree_size=found.tree_size, root=found.root.hex(), note=found.note) if found else None


def with_checkpoint(body: bytes, signed: CheckpointRef | None) -> bytes:
    """A JSON object body with a ``checkpoint`` member added (null when none covers it yet)."""
    document = orjson.loads(body)
    document["checkpoint"] = signed.model_dump() if signed is not None else None
    return orjson.dumps(document)
