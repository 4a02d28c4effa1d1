"""Every read route documents min_position (and the errors it can bring); writes and probes do not take it."""

from services.routes import route_table


def test_read_routes_document_min_position_and_writes_do_not() -> None:
    with_it = {(r.method, r.path) for r in route_table() if any(q.name == "min_position" for q in r.doc.query)}
    assert ("GET", "/v1/campaigns/{campaign}/dashboard") in with_it
    assert ("GET", "/v1/events") in with_it
    assert ("GET", "/v1/stream") in with_it
    assert len(with_it) == 13
    assert all(method == "GET" for method, _ in with_it)
    assert not {("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics"), ("GET", "/v1/catalogue")} & with_it
    for route in route_table():
        if (route.method, route.path) in with_it:
            assert {422, 503} <= set(route.doc.errors), route.path
