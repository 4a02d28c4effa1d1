"""Content negotiation: media ranges with q-values (RFC 9110 §12.5.1), parsed by python-mimeparse."""

from collections.abc import Sequence

import mimeparse  # type: ignore[import-untyped]
from aiohttp import web

from services.errors import NotAcceptable


def negotiate(request: web.Request, offered: Sequence[str]) -> str:
    """The offered type the client prefers (the first offered on a tie, and when it sends no Accept).

    ``q=0`` excludes a type; nothing acceptable is 406. An Accept header that cannot be parsed at all
    is ignored, as RFC 9110 allows, and answered with the first offered type.
    """
    header = request.headers.get("Accept", "").strip() or "*/*"
    try:
        best: str = mimeparse.best_match(list(reversed(offered)), header)  # ties go to the last listed
    except mimeparse.MimeTypeParseException:
        return offered[0]
    if not best:
        raise NotAcceptable(f"this route answers {' or '.join(offered)}; the Accept header allows neither")
    return best
