"""Response models of the verifiable log (Merkle proofs). Fields may be added, never renamed."""

from pydantic import BaseModel, Field


class InclusionProofOut(BaseModel):
    """GET /v1/events/{event_id}/proof: the event is leaf ``leaf_index`` of the signed tree ``checkpoint``."""

    event_id: str
    position: int = Field(description="the event's position; leaf_index = position - 1")
    leaf_index: int
    tree_size: int
    leaf_hash: str = Field(description="hex SHA-256(0x00 ‖ canonical bytes of the event)")
    audit_path: list[str] = Field(description="hex RFC 9162 inclusion proof, the leaf's sibling first")
    checkpoint: str = Field(description="the C2SP signed checkpoint of tree_size")


class ConsistencyProofOut(BaseModel):
    """GET /v1/log/consistency: the tree of size ``to`` extends the tree of size ``from``."""

    from_: int = Field(alias="from")
    to: int
    proof: list[str] = Field(description="hex RFC 9162 §2.1.4 consistency proof")
    checkpoint: str = Field(description="the C2SP signed checkpoint of size ``to``")


class CheckpointRef(BaseModel):
    """The signed checkpoint a set of figures was computed under: the first whose tree holds their position."""

    tree_size: int
    root: str = Field(description="hex root hash")
    note: str = Field(description="the C2SP signed checkpoint")
