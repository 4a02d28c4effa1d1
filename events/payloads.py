"""One pydantic model per event type and version: the ``data`` a regional system sends."""

from datetime import date
from typing import Annotated, Literal, Self
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from events.fields import CampaignId, Count, Label, Money, Text


class Payload(BaseModel):
    """Base of every event payload: unknown fields are refused, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class RaidConducted(Payload):
    dens_busted: Count
    personnel: Count
    vehicles: Count
    cases: Count
    seized_value_yuan: Money
    category: Label


class GoodsDestroyed(Payload):
    destroyed_value_yuan: Money
    category: Label


class InspectionCompleted(Payload):
    batches_sampled: Count
    batches_passed: Count
    enterprises: Count
    category: Label
    # batches_passed <= batches_sampled is a catalogue rule (events.catalogue), checked with its code.


class PublicityHeld(Payload):
    participants: Count
    quality_workers: Count
    booths: Count
    consultations: Count


class MaterialsDistributed(Payload):
    copies: Count


class MediaReported(Payload):
    reports: Count
    channel: Label


class LabOpenDayHeld(Payload):
    labs: Count
    visitors: Count


class PledgeSigned(Payload):
    enterprises: Count


class BrandAwarded(Payload):
    enterprises: Count
    products: Count


class EventCorrected(Payload):
    """Replaces an earlier fact; ``replacement`` is validated against the original's type."""

    corrects: UUID
    replacement: dict[str, object]


class EventRetracted(Payload):
    retracts: UUID
    reason: Text


class CampaignOpened(Payload):
    id: CampaignId
    theme: Text
    starts_on: date
    ends_on: date

    @model_validator(mode="after")
    def window_is_sane(self) -> Self:
        if self.ends_on < self.starts_on:
            raise ValueError("ends_on is before starts_on")
        if (self.ends_on - self.starts_on).days > 366:
            raise ValueError("a campaign window is at most one year")
        return self


class CampaignClosed(Payload):
    id: CampaignId
    note: Text | None = Field(default=None)
    force: Literal[True] | None = Field(default=None)
    """Closed over open blocking data-quality flags (issue 15); ``note`` then says why."""


class FlagReviewed(Payload):
    """A reviewer's verdict on a data-quality flag (the flag's id from GET .../flags)."""

    flag_id: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{16}$")]
    verdict: Literal["confirmed", "false_alarm"]
    note: Text


class CampaignReopened(Payload):
    id: CampaignId
    reason: Text
