-- Configuration: sites, their sources, and the tracking numbers of each source.
-- Options that do not need their own column (idle timeout, overflow policy, whisper, ...) live
-- in `options`, validated by gateway.engine.config before they are written.
CREATE TABLE sites (
    id          bigserial PRIMARY KEY,
    key         text NOT NULL UNIQUE,
    name        text NOT NULL,
    swap_targets text[] NOT NULL DEFAULT '{}',
    allowed_origins text[] NOT NULL DEFAULT '{}',
    options     jsonb NOT NULL DEFAULT '{}',
    active      boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE sources (
    id          bigserial PRIMARY KEY,
    site_id     bigint NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    name        text NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('online', 'offline')),
    position    integer NOT NULL,
    match       jsonb,
    forward_to  text NOT NULL,
    options     jsonb NOT NULL DEFAULT '{}',
    active      boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (site_id, name)
);

CREATE TABLE numbers (
    id          bigserial PRIMARY KEY,
    e164        text NOT NULL UNIQUE,
    source_id   bigint NOT NULL REFERENCES sources (id) ON DELETE CASCADE,
    position    integer NOT NULL,
    active      boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX numbers_source ON numbers (source_id, position);

-- Traffic: written by the write-behind writer from engine records. Site and source are kept
-- by key and name (not by foreign key) so history survives configuration edits.
CREATE TABLE visitors (
    id          text PRIMARY KEY,
    site        text NOT NULL,
    first_seen  timestamptz NOT NULL,
    last_seen   timestamptz NOT NULL
);

CREATE TABLE sessions (
    id          text PRIMARY KEY,
    visitor     text NOT NULL,
    site        text NOT NULL,
    source      text NOT NULL,
    number      text NOT NULL,
    started_at  timestamptz NOT NULL,
    last_activity timestamptz NOT NULL,
    landing_url text NOT NULL DEFAULT '',
    referrer    text,
    user_agent  text NOT NULL DEFAULT '',
    mobile      boolean NOT NULL DEFAULT false,
    shared      boolean NOT NULL DEFAULT false,
    returning_visitor boolean NOT NULL DEFAULT false,
    pageviews   integer NOT NULL DEFAULT 1,
    last_click_to_call timestamptz,
    hidden_at   timestamptz,
    attribution jsonb NOT NULL DEFAULT '{}'
);
-- The loader reads recent sessions; candidates and reports read by number/site and time.
CREATE INDEX sessions_last_activity ON sessions (last_activity);
CREATE INDEX sessions_number_started ON sessions (number, started_at);
CREATE INDEX sessions_site_started ON sessions (site, source, started_at);
CREATE INDEX sessions_visitor ON sessions (visitor);

CREATE TABLE session_events (
    session     text NOT NULL,
    kind        text NOT NULL
                CHECK (kind IN ('pageview', 'ping', 'click_to_call', 'hidden', 'shared')),
    at          timestamptz NOT NULL,
    -- The writer may replay a batch after a failure it cannot tell from success: the key makes
    -- a replayed event a no-op instead of a duplicate.
    PRIMARY KEY (session, at, kind)
);

-- Calls: one row per carrier call id (Twilio CallSid or SIP Call-ID).
CREATE TABLE calls (
    id          text PRIMARY KEY,
    site        text NOT NULL,
    source      text NOT NULL,
    to_number   text NOT NULL,
    caller      text,
    forward_to  text NOT NULL,
    at          timestamptz NOT NULL,
    session     text,
    visitor     text,
    likelihood  double precision,
    candidate_count integer NOT NULL DEFAULT 0,  -- all candidates; call_candidates keeps the best
    carrier     text NOT NULL DEFAULT 'twilio',
    status      text,
    dial_status text,
    duration    integer,
    recording_url text,
    matched_by  text NOT NULL DEFAULT 'auto',
    matched_at  timestamptz,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX calls_site_at ON calls (site, at DESC, id DESC);
CREATE INDEX calls_at ON calls (at DESC, id DESC);
CREATE INDEX calls_caller ON calls (caller, at);

CREATE TABLE call_candidates (
    call_id     text NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    rank        integer NOT NULL,
    session     text NOT NULL,
    visitor     text NOT NULL,
    likelihood  double precision NOT NULL,
    PRIMARY KEY (call_id, rank)
);

-- Every change of a call's attached session: the automatic match and each user override.
CREATE TABLE call_matches (
    id          bigserial PRIMARY KEY,
    call_id     text NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    session     text,
    previous    text,
    actor       text NOT NULL,
    at          timestamptz NOT NULL
);
CREATE INDEX call_matches_call ON call_matches (call_id, at);
-- A replayed override is the same row, not a second one.
CREATE UNIQUE INDEX call_matches_once ON call_matches (call_id, at, actor);
