-- Conversations (WhatsApp and SMS chats), their transcript, hold requests, and provider
-- status reports.

CREATE TABLE conversations (
    id INTEGER PRIMARY KEY,
    workspace_id INTEGER NOT NULL REFERENCES workspaces (id),
    channel TEXT NOT NULL,
    contact TEXT NOT NULL,
    paused INTEGER NOT NULL DEFAULT 0,
    last_inbound_at INTEGER,
    last_outbound_at INTEGER,
    data TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (workspace_id, channel, contact)
);
CREATE INDEX conversations_recent ON conversations (workspace_id, updated_at);

CREATE TABLE conversation_messages (
    id INTEGER PRIMARY KEY,
    workspace_id INTEGER NOT NULL REFERENCES workspaces (id),
    conversation_id INTEGER NOT NULL,
    direction TEXT NOT NULL,
    author TEXT NOT NULL,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    -- The provider's id (a WhatsApp wamid); a repeated delivery is stored once.
    provider_message_id TEXT,
    -- The outbox message, for messages sent from here.
    message_id INTEGER,
    quote_amount TEXT,
    quote_currency TEXT,
    quote_product TEXT,
    occurred_at INTEGER NOT NULL,
    UNIQUE (workspace_id, provider_message_id)
);
CREATE INDEX conversation_messages_by_conversation ON conversation_messages (conversation_id, occurred_at);

CREATE TABLE holds (
    id INTEGER PRIMARY KEY,
    workspace_id INTEGER NOT NULL REFERENCES workspaces (id),
    conversation_id INTEGER NOT NULL,
    run_id INTEGER NOT NULL,
    contact TEXT NOT NULL,
    product TEXT,
    status TEXT NOT NULL,
    requested_at INTEGER NOT NULL,
    resolved_at INTEGER,
    resolution TEXT,
    UNIQUE (workspace_id, run_id)
);
CREATE INDEX holds_open ON holds (workspace_id, status, requested_at);

-- Delivery reports, once per message and status, kept even when they arrive before the send
-- that they report on has been recorded.
CREATE TABLE message_statuses (
    id INTEGER PRIMARY KEY,
    workspace_id INTEGER NOT NULL REFERENCES workspaces (id),
    provider_message_id TEXT NOT NULL,
    status TEXT NOT NULL,
    error_code TEXT,
    error_title TEXT,
    occurred_at INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    UNIQUE (workspace_id, provider_message_id, status)
);
