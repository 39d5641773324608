-- Caravan hub, schema version 1: the exchange, its log and the registry.
--
-- Every write of the hub runs in a transaction that first locks the one row of `counters`,
-- so that transactions from every replica take sequence numbers, event cursors and log
-- indexes in the order they commit: the exchange log is one gap-free order for the region,
-- and a reader that sees sequence n committed has seen every sequence before it.

CREATE TABLE counters (
    id            smallint PRIMARY KEY CHECK (id = 1),
    log_size      bigint NOT NULL,
    next_sequence bigint NOT NULL,
    next_event    bigint NOT NULL,
    next_report   bigint NOT NULL
);
INSERT INTO counters VALUES (1, 0, 1, 1, 1);

-- The store's epoch (a UUIDv7, made anew by a restore) and the registry version floor.
CREATE TABLE meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);

-- A document the hub accepted, as it was accepted: never changed afterwards.
CREATE TABLE messages (
    sequence       bigint PRIMARY KEY,
    sender         text NOT NULL,
    message_id     text NOT NULL,
    recipient      text NOT NULL,
    document_type  text NOT NULL,
    header_sha256  bytea NOT NULL,
    header         bytea NOT NULL,
    key_id         text NOT NULL,
    signature      bytea NOT NULL,
    receipt        bytea NOT NULL,
    accepted_at_ms bigint NOT NULL,
    payload_length bigint NOT NULL,
    payload_chunks integer NOT NULL,
    log_index      bigint NOT NULL,
    -- One message per (sender, id): a resend is answered with the original receipt, another
    -- header under the same id refused. The id first, so that a batch finds its messages by
    -- their ids alone.
    CONSTRAINT messages_message_id_sender UNIQUE (message_id, sender)
);

-- Where each message is: its state now, every state it went through and when, and its
-- acknowledgement. Apart from the message, so that a change of state writes a narrow row.
-- A document waits for its recipient while its state is ACCEPTED (1) or DELIVERED (2):
-- `message_states_queue` is that queue.
CREATE TABLE message_states (
    sequence      bigint PRIMARY KEY REFERENCES messages,
    recipient     text NOT NULL,
    state         smallint NOT NULL,
    states        smallint[] NOT NULL,
    state_times   bigint[] NOT NULL,
    ack           bytea,
    ack_log_index bigint NOT NULL DEFAULT 0
);
CREATE INDEX message_states_queue ON message_states (recipient, sequence) WHERE state IN (1, 2);

-- Payloads in chunks of at most 1 MiB, so that a large document is streamed, never held.
CREATE TABLE payload_chunks (
    sequence bigint NOT NULL REFERENCES messages,
    chunk    integer NOT NULL,
    bytes    bytea NOT NULL,
    PRIMARY KEY (sequence, chunk)
);

-- What each sender sees of its messages: its status events, by cursor.
CREATE TABLE events (
    sender     text NOT NULL,
    cursor     bigint NOT NULL,
    sequence   bigint NOT NULL,
    message_id text NOT NULL,
    state      smallint NOT NULL,
    at_ms      bigint NOT NULL,
    ack        bytea NOT NULL,
    log_index  bigint NOT NULL,
    PRIMARY KEY (sender, cursor)
);

-- The exchange log: each entry exactly as encoded (its Merkle leaf hashes those bytes), and
-- the hashes of the perfect subtrees of its Merkle tree above the leaves (level 1 and up; a
-- leaf is the hash of its entry, not stored twice).
CREATE TABLE log_entries (
    log_index bigint PRIMARY KEY,
    kind      integer NOT NULL,
    at_ms     bigint NOT NULL,
    entry     bytea NOT NULL
);
CREATE TABLE log_nodes (
    level     smallint NOT NULL,
    node      bigint NOT NULL,
    hash      bytea NOT NULL CHECK (length(hash) = 32),
    CHECK (level > 0),
    PRIMARY KEY (level, node)
);

-- Signed tree heads kept for audits.
CREATE TABLE tree_heads (
    tree_size    bigint PRIMARY KEY,
    root_hash    bytea NOT NULL,
    timestamp_ms bigint NOT NULL,
    key_id       text NOT NULL,
    signature    bytea NOT NULL
);

-- The registry: the signed trust list now in force, and the revoked client certificates.
CREATE TABLE registry (
    id                smallint PRIMARY KEY CHECK (id = 1),
    version           bigint NOT NULL,
    signed_trust_list bytea NOT NULL
);
CREATE TABLE revoked_certificates (
    serial     text PRIMARY KEY,
    at_ms      bigint NOT NULL,
    reason     text NOT NULL,
    revoked_by text NOT NULL
);

-- Client certificates seen, first sighting kept.
CREATE TABLE certificates (
    serial        text PRIMARY KEY,
    fingerprint   text NOT NULL,
    subject       text NOT NULL,
    not_before_ms bigint NOT NULL,
    not_after_ms  bigint NOT NULL,
    first_seen_ms bigint NOT NULL
);

-- Conformance reports recorded and signed by the hub.
CREATE TABLE conformance_reports (
    id             bigint PRIMARY KEY,
    participant    text NOT NULL,
    passed         boolean NOT NULL,
    document_types text[] NOT NULL,
    recorded_at_ms bigint NOT NULL,
    recorded_by    text NOT NULL,
    report_json    bytea NOT NULL,
    key_id         text NOT NULL,
    signature      bytea NOT NULL,
    log_index      bigint NOT NULL
);
