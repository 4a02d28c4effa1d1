-- Everything the writer needs to decide a group, read under the append lock in ONE round trip.
-- p_lock is events.store.APPEND_LOCK; the comment there says why appends are serialized.
CREATE FUNCTION qmstats_append_context(p_lock bigint, p_ids uuid[], p_campaigns text[], p_codes text[],
                                       p_keys text[])
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    result jsonb;
BEGIN
    PERFORM pg_advisory_xact_lock(p_lock);
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
        'codes', (SELECT coalesce(jsonb_agg(jsonb_build_array(c.year, c.code)), '[]'::jsonb)
                    FROM region_codes c WHERE c.code = ANY(p_codes)),
        -- Revocation is checked here, under the lock, so a revoked key never appends after its revocation
        -- committed, even before this service's key cache has heard the NOTIFY.
        'revoked', (SELECT coalesce(jsonb_agg(k.id), '[]'::jsonb)
                      FROM api_keys k WHERE k.id = ANY(p_keys) AND k.revoked_at IS NOT NULL)
    ) INTO result;
    RETURN result;
END $$;
