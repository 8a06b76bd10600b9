-- The panel's store. Written in the SQL that SQLite and PostgreSQL share, so
-- one migration serves both: money is BIGINT minor units (never floats),
-- times are RFC 3339 text in UTC, identifiers the workers mint are UUID text.

CREATE TABLE users (
    id BIGINT PRIMARY KEY,
    email TEXT,
    balance_minor BIGINT NOT NULL DEFAULT 0,
    currency TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE orders (
    id BIGINT PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id),
    service_id BIGINT,
    video_url TEXT,
    youtube_video_id TEXT,
    quantity BIGINT NOT NULL,
    charge_minor BIGINT NOT NULL,
    refunded_minor BIGINT NOT NULL DEFAULT 0,
    currency TEXT NOT NULL,
    status TEXT NOT NULL,
    payment_id TEXT,
    start_count BIGINT,
    delivered_quantity BIGINT NOT NULL DEFAULT 0,
    progress_percent BIGINT NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    CHECK (refunded_minor >= 0 AND refunded_minor <= charge_minor)
);

CREATE INDEX orders_by_payment ON orders (payment_id);

CREATE TABLE payments (
    payment_id TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    user_id BIGINT NOT NULL REFERENCES users (id),
    amount_minor BIGINT NOT NULL,
    currency TEXT NOT NULL,
    status TEXT NOT NULL,
    confirmed_at TEXT NOT NULL,
    event_id TEXT NOT NULL
);

-- Append-only: a row is never updated or deleted. A user's balance always
-- equals the sum of their ledger lines, which the tests check. The unique
-- key makes a second line for the same payment, charge or refund impossible
-- even if deduplication upstream were to fail.
CREATE TABLE ledger (
    id TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id),
    amount_minor BIGINT NOT NULL,
    currency TEXT NOT NULL,
    kind TEXT NOT NULL,
    reference TEXT NOT NULL,
    event_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (kind, reference)
);

CREATE INDEX ledger_by_user ON ledger (user_id);

CREATE TABLE refunds (
    refund_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    order_id BIGINT,
    payment_id TEXT,
    user_id BIGINT NOT NULL,
    amount_minor BIGINT NOT NULL,
    currency TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT NOT NULL,
    provider_reference TEXT,
    created_at TEXT NOT NULL
);

CREATE TABLE audit_log (
    id TEXT PRIMARY KEY,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail TEXT NOT NULL,
    correlation_id TEXT
);

-- Deduplication: one row per event a consumer has applied, written in the
-- same transaction as the event's effects.
CREATE TABLE processed_events (
    consumer TEXT NOT NULL,
    event_id TEXT NOT NULL,
    topic TEXT NOT NULL,
    partition_id BIGINT NOT NULL,
    offset_id BIGINT NOT NULL,
    processed_at TEXT NOT NULL,
    PRIMARY KEY (consumer, event_id)
);

-- Follow-up events, written with the effects that caused them and sent
-- after the transaction commits. A crash between the commit and the send
-- leaves the row unsent, and the next delivery or start sends it.
CREATE TABLE outbox (
    id TEXT PRIMARY KEY,
    consumer TEXT NOT NULL,
    source_event_id TEXT NOT NULL,
    position BIGINT NOT NULL,
    topic TEXT NOT NULL,
    message_key TEXT,
    payload TEXT NOT NULL,
    correlation_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    sent_at TEXT
);

CREATE INDEX outbox_unsent ON outbox (consumer, sent_at);
