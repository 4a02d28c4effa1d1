-- qmstats_append_context is planned anew on every call. Left to the plan cache, a session's plpgsql function
-- switches to a generic plan after five calls, and keeps it until the events table's statistics change, which
-- autovacuum does at most once a minute. A generic plan made while the log is young (a fresh database, or a
-- log that grew since its last ANALYZE) looks the group's event ids up by a sequential scan of events, so every
-- group pays for the whole log while holding the append lock. Measured on a fresh log under 64 single-event
-- clients (bench/bench_ingest.py's load, projector off): the context statement took 1,672 µs a group with
-- the cached plan at ~20k events and 108 µs planned per call, and ingest went from 3,030 to 4,339 events/s.
-- Planning the six small lookups costs less than one such scan; with the planner seeing the ids, it always
-- takes the unique index.
ALTER FUNCTION qmstats_append_context(bigint, uuid[], text[], text[], text[]) SET plan_cache_mode = force_custom_plan;
