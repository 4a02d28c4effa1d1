"""What a validation error says to a regional system's developer: one voice, no library wording. Pure.

pydantic's messages ("Value error, …", "String should match pattern '^[0-9]{6}$'") describe the library, not
the contract. Every ItemError built from a pydantic error takes its text from ``explain`` here, so the wording
is decided in one place.
"""

from typing import Any, Final

from pydantic_core import ErrorDetails

EXAMPLE_TIME: Final = "2017-09-08T10:00:00+08:00"
EXAMPLE_UUID: Final = "6f1c2a4e-0d1b-4a57-9d6e-5b0f3c9a7e11"

# The field a pattern belongs to → what the pattern means, in words.
_PATTERNS: Final = {
    "region": "must be a six-digit GB/T 2260 region code, such as 330102 (000000 is the nation)",
    "campaign": "must be a campaign id such as 2017: letters, digits, '-' and '_', at most 32 characters",
    "id": "must be a campaign id such as 2017: letters, digits, '-' and '_', at most 32 characters",
}
_TEXT_PATTERN: Final = "must not contain control characters"

_BY_TYPE: Final[dict[str, str]] = {
    "missing": "is required",
    "int_type": "must be a whole number (a JSON integer such as 12)",
    "int_parsing": "must be a whole number (a JSON integer such as 12)",
    "int_from_float": "must be a whole number (a JSON integer such as 12), without a fraction",
    "string_type": "must be a string",
    "bool_type": "must be true or false",
    "dict_type": "must be a JSON object",
    "model_type": "must be a JSON object",
    "model_attributes_type": "must be a JSON object",
    "list_type": "must be a JSON array",
    "uuid_type": f"must be a UUID string such as {EXAMPLE_UUID}",
    "uuid_parsing": f"must be a UUID such as {EXAMPLE_UUID}",
    "uuid_version": f"must be a UUID such as {EXAMPLE_UUID}",
    "timezone_aware": f"must give the UTC offset, such as {EXAMPLE_TIME}",
    "datetime_type": f"must be an RFC 3339 date and time with its UTC offset, such as {EXAMPLE_TIME}",
    "datetime_parsing": f"must be an RFC 3339 date and time with its UTC offset, such as {EXAMPLE_TIME}",
    "datetime_from_date_parsing": f"must be an RFC 3339 date and time with its UTC offset, such as {EXAMPLE_TIME}",
    "date_type": "must be a date written YYYY-MM-DD, such as 2017-09-01",
    "date_parsing": "must be a date written YYYY-MM-DD, such as 2017-09-01",
    "date_from_datetime_parsing": "must be a date written YYYY-MM-DD, such as 2017-09-01",
    "date_from_datetime_inexact": "must be a date written YYYY-MM-DD, such as 2017-09-01",
    "string_too_short": "must not be empty",
    "json_invalid": "is not valid JSON",
}


# A limit the value broke: the message's template and the pydantic error context key holding the limit.
_BOUNDED: Final[dict[str, tuple[str, str]]] = {
    "greater_than_equal": ("must be at least {}", "ge"),
    "greater_than": ("must be more than {}", "gt"),
    "less_than_equal": ("must be at most {}", "le"),
    "less_than": ("must be less than {}", "lt"),
    "string_too_long": ("must be at most {} characters long", "max_length"),
    "too_short": ("must hold at least {} item(s)", "min_length"),
    "too_long": ("must hold at most {} items", "max_length"),
}


def _field(loc: tuple[int | str, ...]) -> str | None:
    names = [part for part in loc if isinstance(part, str)]
    return names[-1] if names else None


def _bound(ctx: dict[str, Any], key: str) -> str:
    value = ctx.get(key)
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


def explain(error: ErrorDetails, *, of_event: bool = True) -> str:
    """The message for one pydantic error, in the API's own words (``of_event=False``: a request body that is
    not an event, such as opening a campaign)."""
    kind = error["type"]
    ctx: dict[str, Any] = dict(error.get("ctx") or {})
    field = _field(tuple(error["loc"]))
    if kind in ("value_error", "assertion_error"):
        # Our own validators raise ValueError with a message written for the client: keep it, drop the prefix.
        cause = ctx.get("error")
        return str(cause) if cause is not None else error["msg"].removeprefix("Value error, ")
    if kind == "extra_forbidden":
        # An event's fields are the catalogue's; a campaign or review body is no event type.
        return ("is not a field of this event type; remove it (GET /v1/catalogue lists the fields)" if of_event
                else "is not a field of this request; remove it")
    if kind == "string_pattern_mismatch":
        return _PATTERNS.get(field or "", _TEXT_PATTERN)
    if kind in _BOUNDED:
        template, key = _BOUNDED[kind]
        return template.format(_bound(ctx, key))
    if kind in ("literal_error", "enum"):
        return f"must be one of {ctx.get('expected', 'the listed values')}"
    return _BY_TYPE.get(kind, "is not valid here")
