"""Every read route documents min_position (and the errors it can bring); writes and probes do not take it."""

from services.routes import route_table

# GET routes that read no database (decisions: "a route with no database read takes no min_position").
NO_DATABASE = {"/v1/catalogue", "/v1/openapi.json", "/healthz", "/readyz", "/metrics"}


def test_read_routes_document_min_position_and_writes_do_not() -> None:
    with_it = {(r.method, r.path) for r in route_table() if any(q.name == "min_position" for q in r.doc.query)}
    assert ("GET", "/v1/campaigns/{campaign}/dashboard") in with_it
    assert ("GET", "/v1/events") in with_it
    assert ("GET", "/v1/stream") in with_it
    assert all(method == "GET" for method, _ in with_it)
    assert not {("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics"), ("GET", "/v1/catalogue")} & with_it
    for route in route_table():
        if (route.method, route.path) in with_it:
            assert {422, 503} <= set(route.doc.errors), route.path


def test_every_get_route_that_reads_the_database_takes_min_position() -> None:
    # Derived from the table, not listed: a read route added later (the verifiable log's) cannot slip past.
    with_it = {r.path for r in route_table() if any(q.name == "min_position" for q in r.doc.query)}
    reads = {r.path for r in route_table() if r.method == "GET" and r.path not in NO_DATABASE}
    assert reads - with_it == set()
    assert {"/v1/log/checkpoint", "/v1/log/key", "/v1/log/tile/{level}/{index}", "/v1/events/{event_id}/proof",
            "/v1/log/consistency", "/v1/campaigns/{campaign}/flags"} <= with_it
