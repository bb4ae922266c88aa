-- nudge schema for SQLite. Timestamps are UTC epoch milliseconds; money is a decimal string;
-- `data` columns hold the engine's JSON state. Every table carries a workspace id.

CREATE TABLE workspaces (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
INSERT INTO workspaces (id, name, created_at) VALUES (1, 'default', 0);

CREATE TABLE api_keys (
    id INTEGER PRIMARY KEY,
    workspace_id INTEGER NOT NULL REFERENCES workspaces (id),
    key_hash TEXT NOT NULL UNIQUE,
    label TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

-- Every accepted event, once per delivery.
CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    workspace_id INTEGER NOT NULL REFERENCES workspaces (id),
    source TEXT NOT NULL,
    dedupe_key TEXT NOT NULL,
    event_type TEXT NOT NULL,
    occurred_at INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    body TEXT NOT NULL,
    UNIQUE (workspace_id, source, dedupe_key)
);

CREATE TABLE checkouts (
    id INTEGER PRIMARY KEY,
    workspace_id INTEGER NOT NULL REFERENCES workspaces (id),
    external_id TEXT NOT NULL,
    cart_token TEXT,
    status TEXT NOT NULL,
    phone TEXT,
    email TEXT,
    customer_id TEXT,
    unreachable TEXT,
    opened_at INTEGER NOT NULL,
    last_activity_at INTEGER NOT NULL,
    abandoned_at INTEGER,
    data TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (workspace_id, external_id)
);
CREATE INDEX checkouts_cart_token ON checkouts (workspace_id, cart_token) WHERE cart_token IS NOT NULL;
CREATE INDEX checkouts_phone ON checkouts (workspace_id, phone) WHERE phone IS NOT NULL;
CREATE INDEX checkouts_email ON checkouts (workspace_id, email) WHERE email IS NOT NULL;
CREATE INDEX checkouts_customer ON checkouts (workspace_id, customer_id) WHERE customer_id IS NOT NULL;

CREATE TABLE orders (
    id INTEGER PRIMARY KEY,
    workspace_id INTEGER NOT NULL REFERENCES workspaces (id),
    external_id TEXT NOT NULL,
    checkout_id TEXT,
    cart_token TEXT,
    phone TEXT,
    email TEXT,
    customer_id TEXT,
    occurred_at INTEGER NOT NULL,
    total TEXT,
    currency TEXT,
    data TEXT NOT NULL,
    UNIQUE (workspace_id, external_id)
);
CREATE INDEX orders_checkout ON orders (workspace_id, checkout_id) WHERE checkout_id IS NOT NULL;
CREATE INDEX orders_cart_token ON orders (workspace_id, cart_token) WHERE cart_token IS NOT NULL;
CREATE INDEX orders_phone ON orders (workspace_id, phone) WHERE phone IS NOT NULL;
CREATE INDEX orders_email ON orders (workspace_id, email) WHERE email IS NOT NULL;
CREATE INDEX orders_customer ON orders (workspace_id, customer_id) WHERE customer_id IS NOT NULL;

-- One run per flow and subject: a checkout enters a flow at most once.
CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    workspace_id INTEGER NOT NULL REFERENCES workspaces (id),
    flow TEXT NOT NULL,
    subject_kind TEXT NOT NULL,
    subject_id TEXT NOT NULL,
    status TEXT NOT NULL,
    exit_reason TEXT,
    holdout INTEGER NOT NULL,
    entered_at INTEGER NOT NULL,
    next_step INTEGER NOT NULL,
    steps_total INTEGER NOT NULL,
    last_message_at INTEGER,
    credited_order TEXT,
    ended_at INTEGER,
    UNIQUE (workspace_id, flow, subject_kind, subject_id)
);
CREATE INDEX runs_subject ON runs (workspace_id, subject_kind, subject_id);

-- Pending timers only: a timer row is deleted when it fires.
CREATE TABLE timers (
    id INTEGER PRIMARY KEY,
    workspace_id INTEGER NOT NULL REFERENCES workspaces (id),
    timer_key TEXT NOT NULL,
    kind TEXT NOT NULL,
    subject_id INTEGER NOT NULL,
    flow TEXT,
    due_at INTEGER NOT NULL,
    lease_owner TEXT,
    lease_until INTEGER,
    UNIQUE (workspace_id, timer_key)
);
CREATE INDEX timers_due ON timers (due_at);
CREATE INDEX timers_workspace_due ON timers (workspace_id, due_at);

-- Every message ever decided, with its status history folded into one row.
CREATE TABLE messages (
    id INTEGER PRIMARY KEY,
    workspace_id INTEGER NOT NULL REFERENCES workspaces (id),
    -- NULL for a message an agent sent by hand.
    run_id INTEGER,
    step INTEGER NOT NULL,
    idempotency_key TEXT NOT NULL,
    flow TEXT NOT NULL,
    channel TEXT NOT NULL,
    kind TEXT NOT NULL,
    to_address TEXT NOT NULL,
    body TEXT NOT NULL,
    template TEXT,
    encoding TEXT,
    segments INTEGER NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    provider TEXT,
    provider_message_id TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    -- The instance that last claimed the message for sending.
    claimed_by TEXT,
    link_token TEXT,
    -- WhatsApp free-form text only: when the customer-service window closes; the sender
    -- switches to the stored template, or gives up, once it has passed.
    window_closes_at INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    sent_at INTEGER,
    UNIQUE (workspace_id, idempotency_key)
);
CREATE INDEX messages_to ON messages (workspace_id, to_address, created_at);
CREATE INDEX messages_run ON messages (run_id);
CREATE INDEX messages_provider_id ON messages (provider_message_id) WHERE provider_message_id IS NOT NULL;

-- Messages still to send: rows leave this table once the send ends.
CREATE TABLE outbox (
    message_id INTEGER PRIMARY KEY,
    workspace_id INTEGER NOT NULL REFERENCES workspaces (id),
    state TEXT NOT NULL,
    not_before INTEGER NOT NULL,
    lease_owner TEXT,
    lease_until INTEGER
);
CREATE INDEX outbox_due ON outbox (state, not_before);

CREATE TABLE links (
    token TEXT PRIMARY KEY,
    workspace_id INTEGER NOT NULL REFERENCES workspaces (id),
    message_id INTEGER NOT NULL,
    target TEXT NOT NULL,
    campaign TEXT NOT NULL,
    medium TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE clicks (
    id INTEGER PRIMARY KEY,
    workspace_id INTEGER NOT NULL REFERENCES workspaces (id),
    token TEXT NOT NULL,
    clicked_at INTEGER NOT NULL
);
CREATE INDEX clicks_token ON clicks (token);

-- Addresses that must not be messaged.
CREATE TABLE suppressions (
    workspace_id INTEGER NOT NULL REFERENCES workspaces (id),
    address TEXT NOT NULL,
    source TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, address)
);

-- What the sandbox channel "sent"; no uniqueness, so a double send would show.
CREATE TABLE sandbox_outbox (
    id INTEGER PRIMARY KEY,
    workspace_id INTEGER NOT NULL,
    message_id INTEGER NOT NULL,
    to_address TEXT NOT NULL,
    body TEXT NOT NULL,
    sent_at INTEGER NOT NULL
);
CREATE INDEX sandbox_outbox_message ON sandbox_outbox (message_id);
