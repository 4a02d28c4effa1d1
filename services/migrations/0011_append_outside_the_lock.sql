-- A group is decided outside the append lock and appended under it in one statement (events/writer.py).
--
-- qmstats_append_snapshot reads what deciding a group needs WITHOUT the lock, in one statement and so one
-- snapshot: the same context qmstats_append_context read under the lock (0004), plus a mark of the imported
-- region lists, which are not in the log, so that an import committed since can be noticed. The mark names
-- each list by year and by the transaction that last wrote its row (xmin): every import inserts or updates
-- that row in the transaction that replaces its codes, so any import changes the mark, even one whose
-- imported_at (its transaction's start) is older than another import's that committed first.
CREATE FUNCTION qmstats_region_lists_mark() RETURNS text LANGUAGE sql STABLE AS $$
    SELECT coalesce(string_agg(y.year::text || ':' || y.xmin::text, ',' ORDER BY y.year), '') FROM region_lists y
$$;

-- Planned on every call, for the reason 0010 gives.
CREATE FUNCTION qmstats_append_snapshot(p_ids uuid[], p_campaigns text[], p_codes text[], p_keys text[])
RETURNS jsonb LANGUAGE plpgsql SET plan_cache_mode = force_custom_plan AS $$
DECLARE
    result jsonb;
BEGIN
    SELECT jsonb_build_object(
        'head', (SELECT jsonb_build_array(h.position, encode(h.hash, 'hex'))
                   FROM events h ORDER BY h.position DESC LIMIT 1),
        'events', (SELECT coalesce(jsonb_agg(jsonb_build_array(
                              e.event_id, e.position, e.type, e.schema_version, e.campaign, e.region,
                              encode(e.content_hash, 'hex'),
                              EXISTS (SELECT FROM events r WHERE r.target_event_id = e.event_id
                                                            AND r.type = 'event_retracted'))), '[]'::jsonb)
                     FROM events e WHERE e.event_id = ANY(p_ids)),
        'lifecycle', (SELECT coalesce(jsonb_agg(jsonb_build_array(l.position, l.event_id, l.campaign, l.type, l.data)
                                                ORDER BY l.position), '[]'::jsonb)
                        FROM events l
                       WHERE l.type IN ('campaign_opened', 'campaign_closed', 'campaign_reopened')
                         AND l.campaign = ANY(p_campaigns)),
        'lists', (SELECT coalesce(jsonb_agg(y.year), '[]'::jsonb) FROM region_lists y),
        'lists_mark', qmstats_region_lists_mark(),
        'codes', (SELECT coalesce(jsonb_agg(jsonb_build_array(c.year, c.code)), '[]'::jsonb)
                    FROM region_codes c WHERE c.code = ANY(p_codes)),
        'revoked', (SELECT coalesce(jsonb_agg(k.id), '[]'::jsonb)
                      FROM api_keys k WHERE k.id = ANY(p_keys) AND k.revoked_at IS NOT NULL)
    ) INTO result;
    RETURN result;
END $$;

-- The locked read (the fallback, dry runs, append_in_transaction) reads the same context after the lock:
-- the snapshot function's statement takes its own snapshot, after the lock was granted.
CREATE OR REPLACE FUNCTION qmstats_append_context(p_lock bigint, p_ids uuid[], p_campaigns text[], p_codes text[],
                                                  p_keys text[])
RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(p_lock);
    RETURN qmstats_append_snapshot(p_ids, p_campaigns, p_codes, p_keys);
END $$;

-- Whether one of the last p_count events (those appended since a snapshot: positions have no gaps, and
-- nobody appends while the caller holds the append lock) has an event_id or target among p_ids, or is a
-- lifecycle event of one of p_campaigns. Read backwards from the primary key's end; planned on every call
-- with the count, so that no plan made for an unknown count (or on a young log's statistics) scans the log.
CREATE FUNCTION qmstats_touched_since(p_count bigint, p_ids uuid[], p_campaigns text[])
RETURNS boolean LANGUAGE plpgsql SET plan_cache_mode = force_custom_plan AS $$
BEGIN
    RETURN EXISTS (SELECT FROM (SELECT e.event_id, e.target_event_id, e.type, e.campaign FROM events e
                                 ORDER BY e.position DESC LIMIT p_count) since
                    WHERE since.event_id = ANY(p_ids) OR since.target_event_id = ANY(p_ids)
                       OR (since.type IN ('campaign_opened', 'campaign_closed', 'campaign_reopened')
                           AND since.campaign = ANY(p_campaigns)));
END $$;

-- Append a group decided against the log at p_head, in one statement under the append lock (its own
-- transaction, which commits before the transaction lock is released, so positions become visible in lock
-- order). Returns the head the rows were appended after, or NULL (nothing written) when the group must be
-- decided again under the lock:
-- - one of p_keys (the keys of the requests that append) has been revoked, or the region lists changed
--   (neither is in the log, so both are checked whatever the head);
-- - the head moved past p_head and an event after p_head names one of p_ids (the group's event ids and
--   targets) as its event_id or target, or is a lifecycle event of one of p_campaigns.
-- When the head moved and nothing after p_head touches the group, the decisions stand: the rows are moved
-- after the head (positions + head - p_head) and each hash is chained again from the head's, exactly as
-- events/canonical.chain_hash_of_parts does: sha256(prev || before || position as text || p_stamp || after),
-- p_stamp being the group's ,"recorded_at":"…" fragment.
CREATE FUNCTION qmstats_append_decided(
    p_lock bigint, p_channel text, p_head bigint, p_lists_mark text, p_ids uuid[], p_campaigns text[],
    p_keys text[], p_recorded_at timestamptz, p_stamp bytea,
    p_event_id uuid[], p_type text[], p_version smallint[], p_campaign text[], p_region text[],
    p_occurred_at timestamptz[], p_recorded_by text[], p_request_id text[], p_target uuid[], p_data jsonb[],
    p_content_hash bytea[], p_hash bytea[], p_before bytea[], p_after bytea[])
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    head bigint;
    head_hash bytea;
    hashes bytea[] := p_hash;
    link bytea;
    appended integer := cardinality(p_event_id);
BEGIN
    PERFORM pg_advisory_xact_lock(p_lock);
    IF EXISTS (SELECT FROM api_keys k WHERE k.id = ANY(p_keys) AND k.revoked_at IS NOT NULL)
       OR qmstats_region_lists_mark() IS DISTINCT FROM p_lists_mark THEN
        RETURN NULL;
    END IF;
    SELECT h.position, h.hash INTO head, head_hash FROM events h ORDER BY h.position DESC LIMIT 1;
    head := coalesce(head, 0);
    head_hash := coalesce(head_hash, decode(repeat('00', 32), 'hex'));
    IF head < p_head THEN
        RETURN NULL;
    ELSIF head > p_head THEN
        IF qmstats_touched_since(head - p_head, p_ids, p_campaigns) THEN
            RETURN NULL;
        END IF;
        link := head_hash;
        FOR i IN 1 .. appended LOOP
            link := sha256(link || p_before[i] || convert_to((head + i)::text, 'UTF8') || p_stamp || p_after[i]);
            hashes[i] := link;
        END LOOP;
    END IF;
    INSERT INTO events (position, event_id, type, schema_version, campaign, region, occurred_at, recorded_at,
                        recorded_by, request_id, target_event_id, data, content_hash, prev_hash, hash)
    SELECT head + r.ord, r.event_id, r.type, r.version, r.campaign, r.region, r.occurred_at, p_recorded_at,
           r.recorded_by, r.request_id, r.target, r.data, r.content_hash, r.prev_hash, r.hash
      FROM unnest(p_event_id, p_type, p_version, p_campaign, p_region, p_occurred_at, p_recorded_by, p_request_id,
                  p_target, p_data, p_content_hash, ARRAY[head_hash] || hashes[1:appended - 1], hashes)
           WITH ORDINALITY AS r(event_id, type, version, campaign, region, occurred_at, recorded_by, request_id,
                                target, data, content_hash, prev_hash, hash, ord);
    PERFORM pg_notify(p_channel, (head + appended)::text);
    RETURN head;
END $$;
