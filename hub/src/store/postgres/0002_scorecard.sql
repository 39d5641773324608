-- Readiness Scorecard entries (assessments, overrides, rounds closed), recorded and signed by
-- the hub, never changed. Ids are taken under the counters row's lock, as every number is.
CREATE TABLE scorecard_entries (
    id             bigint PRIMARY KEY,
    recorded_at_ms bigint NOT NULL,
    recorded_by    text NOT NULL,
    entry_json     bytea NOT NULL,
    key_id         text NOT NULL,
    signature      bytea NOT NULL,
    log_index      bigint NOT NULL
);

-- The scorecard reads what was accepted over a window.
CREATE INDEX messages_accepted_at ON messages (accepted_at_ms);
