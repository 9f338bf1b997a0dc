-- Orders: the current state of every order, served by key.
--
-- The business need (background: "orders, transactions, user actions" as
-- events; a hot serving system that applications query for fresh values
-- by key instead of a database kept in sync by hand): the order service
-- publishes every change of an order as an event
--   {"order_id": "O-0007", "customer_id": "C-3", "status": "paid",
--    "amount": 129.90, "version": 2, "updated_at": "2026-01-13T14:31:02Z"}
-- and applications ask "what is the state of order O-0007 now?" with a
-- point query, in well under a millisecond of server time:
--   SELECT status, amount, updated_at FROM orders_current WHERE order_id = 'O-0007';
-- Events are redelivered (at-least-once) and arrive out of order: an old
-- version arriving after a newer one must not win.
--
-- What it shows:
--   * latest state per key with DISTINCT ON (order_id) … ORDER BY order_id,
--     version DESC: the highest version wins whatever the arrival order;
--     duplicates change nothing;
--   * a serving view looked up by its key;
--   * aggregates over the current state (orders per status), which move
--     as orders change status (a retraction and an insertion per change);
--   * records without an order_id or version are left out of the serving
--     view; records that do not decode go to streamlake.dead_letters.
--
-- {{BROKER}} is the Kafka bootstrap address and {{ORDERS_TOPIC}} the topic
-- (the test substitutes both).

CREATE SOURCE order_events (
    order_id    VARCHAR,
    customer_id VARCHAR,
    status      VARCHAR,
    amount      NUMERIC(12, 2),
    version     BIGINT,
    updated_at  TIMESTAMPTZ
)
INCLUDE offset AS kafka_offset
WITH (
    connector = 'kafka',
    topic = '{{ORDERS_TOPIC}}',
    properties.bootstrap.server = '{{BROKER}}',
    scan.startup.mode = 'earliest'
) FORMAT PLAIN ENCODE JSON;

-- The serving view: one row per order, its latest version.
CREATE MATERIALIZED VIEW orders_current AS
SELECT DISTINCT ON (order_id)
       order_id, customer_id, status, amount, version, updated_at
FROM order_events
WHERE order_id IS NOT NULL AND version IS NOT NULL
ORDER BY order_id, version DESC;

-- Dashboards: orders and value per current status.
CREATE MATERIALIZED VIEW orders_by_status AS
SELECT status, count(*) AS orders, sum(amount) AS amount
FROM orders_current
GROUP BY status;

-- Per customer: open orders (not yet delivered or cancelled) and their value.
CREATE MATERIALIZED VIEW customer_open_orders AS
SELECT customer_id, count(*) AS open_orders, sum(amount) AS open_amount
FROM orders_current
WHERE status NOT IN ('delivered', 'cancelled')
GROUP BY customer_id;

-- Not built yet, where this pipeline would use them:
--   * a temporal filter for "orders changed in the last 24 hours"
--     (WHERE updated_at > now() - INTERVAL '24 hours' in a view: rows leave
--     as time passes); today filter in the query that reads the view;
--   * an interval join with a payments stream ("paid within an hour of
--     being placed": ON o.order_id = p.order_id AND p.ts BETWEEN o.ts AND
--     o.ts + INTERVAL '1 hour'), which would release state the watermark
--     has passed;
--   * WITH (state_ttl = '30 days') to forget delivered orders: without it
--     orders_current keeps every order ever seen (it is the serving table).
