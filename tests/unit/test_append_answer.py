"""POST /v1/events answers are serialised without the response models; they must stay the models' JSON."""

import uuid

import pytest

from events.decide import Accepted, ItemResult, ItemStatus
from schemas.api import AppendResponse, EventResult
from services.handlers.events import append_answer


def _item(status: ItemStatus, position: int) -> ItemResult:
    return ItemResult(str(uuid.uuid4()), status, position)


@pytest.mark.parametrize(("results", "status"), [
    ([_item("created", 7)], 201),
    ([_item("duplicate", 3)], 200),
    ([_item("duplicate", 3), _item("duplicate", 2)], 200),
    ([_item("created", 11), _item("duplicate", 4), _item("created", 12)], 201),
])
def test_the_append_answer_is_the_append_response_models_json(results: list[ItemResult], status: int) -> None:
    body, answered = append_answer(Accepted(results, []))
    model = AppendResponse(results=[EventResult(event_id=r.event_id, status=r.status, position=r.position)
                                    for r in results], last_position=max(r.position for r in results))
    assert body == model.model_dump_json().encode()
    assert answered == status
