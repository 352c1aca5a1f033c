-- Scale-out: several gateway processes on one database (gateway/store/cluster.py).

-- Each process follows what the others write: rows are read by the transaction that inserted
-- them (`tx`), "committed since the snapshot I last read at", so none is missed or read twice
-- however the writers' transactions interleave. `origin` is the worker that recorded a session or an event
-- (NULL for one process alone, and for records replayed from a previous run's spool), so a
-- process skips its own.
ALTER TABLE sessions ADD COLUMN tx xid8 NOT NULL DEFAULT pg_current_xact_id(),
                     ADD COLUMN origin text;
CREATE INDEX sessions_tx ON sessions (tx);
ALTER TABLE session_events ADD COLUMN tx xid8 NOT NULL DEFAULT pg_current_xact_id(),
                           ADD COLUMN origin text;
CREATE INDEX session_events_tx ON session_events (tx);
ALTER TABLE calls ADD COLUMN tx xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX calls_tx ON calls (tx);

-- Live gateway processes: each renews its row; a row past `expires_at` is a dead process.
CREATE TABLE gateway_workers (
    id          text PRIMARY KEY,
    host        text NOT NULL,
    pid         integer NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);

-- Which process may hand a pool number to new sessions: one owner at a time, until expiry.
CREATE TABLE number_leases (
    number      text PRIMARY KEY,
    owner       text,
    expires_at  timestamptz NOT NULL,
    acquired_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX number_leases_owner ON number_leases (owner);

-- A counter bumped by every change of the configuration, so the other processes reload it.
CREATE TABLE config_epoch (
    id      boolean PRIMARY KEY DEFAULT true CHECK (id),
    epoch   bigint NOT NULL
);
INSERT INTO config_epoch (id, epoch) VALUES (true, 1);

CREATE FUNCTION bump_config_epoch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE config_epoch SET epoch = epoch + 1;
    RETURN NULL;
END $$;

CREATE TRIGGER sites_epoch AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON sites
    FOR EACH STATEMENT EXECUTE FUNCTION bump_config_epoch();
CREATE TRIGGER sources_epoch AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON sources
    FOR EACH STATEMENT EXECUTE FUNCTION bump_config_epoch();
CREATE TRIGGER numbers_epoch AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON numbers
    FOR EACH STATEMENT EXECUTE FUNCTION bump_config_epoch();
