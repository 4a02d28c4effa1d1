-- Audit reads go by campaign in position order: exports, figures at a position, provenance.
CREATE INDEX events_campaign_position ON events (campaign, position);
