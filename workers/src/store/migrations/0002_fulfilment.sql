-- What fulfilment adds to an order: the YouTube check, the delivery
-- provider's reference, and the Binom campaign and offer it runs under.

ALTER TABLE orders ADD COLUMN verified_at TEXT;
ALTER TABLE orders ADD COLUMN video_title TEXT;
ALTER TABLE orders ADD COLUMN last_view_count BIGINT;
ALTER TABLE orders ADD COLUMN last_view_count_at TEXT;
ALTER TABLE orders ADD COLUMN delivery_id TEXT;
ALTER TABLE orders ADD COLUMN campaign_id BIGINT;
ALTER TABLE orders ADD COLUMN offer_id BIGINT;
-- The correlation id of the request that created the order, so progress
-- the delivery poller reports carries it like every other record.
ALTER TABLE orders ADD COLUMN correlation_id TEXT;

-- YouTube Data API units spent per quota day. Shared by every youtube
-- worker that uses the store, so two processes cannot both spend the last
-- units, and a restart does not forget what was spent.
CREATE TABLE youtube_quota (
    quota_day TEXT PRIMARY KEY,
    budget BIGINT NOT NULL,
    used BIGINT NOT NULL,
    exhausted_at TEXT
);

-- One row per notification handed to its provider, keyed by the
-- notification id, so a notification re-sent under another event id still
-- reaches the customer once.
CREATE TABLE notifications_sent (
    notification_id TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL,
    channel TEXT NOT NULL,
    recipient TEXT NOT NULL,
    provider_reference TEXT,
    sent_at TEXT NOT NULL
);

-- The CQRS read model: one row per order, built only from events, so it
-- can be thrown away and rebuilt from the topics.
CREATE TABLE order_read_model (
    order_id BIGINT PRIMARY KEY,
    user_id BIGINT,
    status TEXT NOT NULL,
    delivered_quantity BIGINT NOT NULL DEFAULT 0,
    target_quantity BIGINT,
    progress_percent BIGINT NOT NULL DEFAULT 0,
    start_count BIGINT,
    campaign_id BIGINT,
    offer_id BIGINT,
    assigned_at TEXT,
    last_update TEXT NOT NULL
);
