-- The Merkle tree over the log (RFC 9162) as C2SP tlog-tiles, and the signed checkpoints.
-- Derived data beside the chain: built from position 1 by the integrator, never rewriting an event.
-- Both tables are insert-only like the log: only full (immutable) tiles are stored; partial tiles
-- are computed from the newest events when asked.
CREATE TABLE log_tiles (
    level  smallint NOT NULL CHECK (level BETWEEN 0 AND 63),
    idx    bigint   NOT NULL CHECK (idx >= 0),
    hashes bytea    NOT NULL CHECK (octet_length(hashes) = 8192),  -- 256 SHA-256 hashes
    root   bytea    NOT NULL CHECK (octet_length(root) = 32),      -- MTH of the 256: its hash one level up
    PRIMARY KEY (level, idx)
);
-- SHA-256 output does not compress; keep it out of line without trying.
ALTER TABLE log_tiles ALTER COLUMN hashes SET STORAGE EXTERNAL;
COMMENT ON TABLE log_tiles IS 'insert-only: full tlog-tiles of the Merkle tree over events';

CREATE TABLE log_checkpoints (
    tree_size bigint      NOT NULL CHECK (tree_size >= 0),
    key_id    bytea       NOT NULL CHECK (octet_length(key_id) = 4),
    root      bytea       NOT NULL CHECK (octet_length(root) = 32),
    note      text        NOT NULL,
    vkey      text        NOT NULL,  -- the signer's verifier key, so readers need no private key
    signed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tree_size, key_id)
);
COMMENT ON TABLE log_checkpoints IS 'insert-only: every signed checkpoint (C2SP tlog-checkpoint note)';

CREATE FUNCTION log_tree_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the log tree is insert-only: % on % is refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE TRIGGER log_tiles_no_update_or_delete BEFORE UPDATE OR DELETE ON log_tiles
    FOR EACH ROW EXECUTE FUNCTION log_tree_refuse_change();
CREATE TRIGGER log_tiles_no_truncate BEFORE TRUNCATE ON log_tiles
    FOR EACH STATEMENT EXECUTE FUNCTION log_tree_refuse_change();
CREATE TRIGGER log_checkpoints_no_update_or_delete BEFORE UPDATE OR DELETE ON log_checkpoints
    FOR EACH ROW EXECUTE FUNCTION log_tree_refuse_change();
CREATE TRIGGER log_checkpoints_no_truncate BEFORE TRUNCATE ON log_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION log_tree_refuse_change();

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'qmstats_app') THEN
        REVOKE ALL ON log_tiles, log_checkpoints FROM qmstats_app;
        GRANT SELECT, INSERT ON log_tiles, log_checkpoints TO qmstats_app;
    END IF;
END $$;
