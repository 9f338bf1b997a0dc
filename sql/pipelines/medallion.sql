-- Medallion: bronze (every raw event, kept), silver (validated, cleaned,
-- deduplicated), gold (business metrics), all kept up to date from Kafka.
--
-- The business need (background: the Kafka-first lakehouse with Bronze /
-- Silver / Gold tables, and the pipeline that lands application events
-- for analysts): Kafka is the system of record; raw data is immutable and
-- replayable; silver applies validation, deduplication and refinement;
-- gold computes the metrics BI reads. Today that is a consumer landing raw
-- files, then hourly batch jobs; here each layer is a table or view,
-- persisted as an Iceberg table any engine can read, always current.
--
-- What it shows:
--   * bronze as a connector table (CREATE TABLE … WITH (connector =
--     'kafka')): every record that decodes is stored as it came, with its
--     Kafka partition and offset, append-only and exactly-once across
--     restarts; records that do not decode are in streamlake.dead_letters
--     with their raw payload, not lost;
--   * silver as a view over bronze: required fields present, event types
--     normalised (trim, lower case) and checked against the known set,
--     countries upper-cased, the first delivery of each event_id kept
--     (DISTINCT ON … ORDER BY event_id, kafka_offset);
--   * gold as aggregates over silver: per hour and country (purchases, net
--     revenue, active users with count(DISTINCT)), and per user.
--   No watermark here: hourly metrics keep counting whatever arrives, as
--   the batch jobs they replace would after a rerun.
--
-- {{BROKER}} is the Kafka bootstrap address and {{EVENTS_TOPIC}} the topic
-- (the test substitutes both).

-- bronze
CREATE TABLE app_events_bronze (
    event_id   VARCHAR,
    event_type VARCHAR,
    user_id    BIGINT,
    amount     NUMERIC(12, 2),
    country    VARCHAR,
    ts         TIMESTAMPTZ
)
INCLUDE partition AS kafka_partition
INCLUDE offset    AS kafka_offset
WITH (
    connector = 'kafka',
    topic = '{{EVENTS_TOPIC}}',
    properties.bootstrap.server = '{{BROKER}}',
    scan.startup.mode = 'earliest'
) FORMAT PLAIN ENCODE JSON;

-- silver
CREATE MATERIALIZED VIEW app_events_silver AS
SELECT DISTINCT ON (event_id)
       event_id,
       lower(trim(event_type))  AS event_type,
       user_id,
       coalesce(amount, 0)      AS amount,
       upper(country)           AS country,
       ts
FROM app_events_bronze
WHERE event_id IS NOT NULL
  AND user_id IS NOT NULL
  AND ts IS NOT NULL
  AND lower(trim(event_type)) IN ('signup', 'login', 'purchase', 'refund')
  AND (amount IS NULL OR amount >= 0)
ORDER BY event_id, kafka_offset;

-- gold: per hour and country
CREATE MATERIALIZED VIEW revenue_hourly AS
SELECT date_trunc('hour', ts) AS hour,
       country,
       count(*) FILTER (WHERE event_type = 'purchase') AS purchases,
       coalesce(sum(amount) FILTER (WHERE event_type = 'purchase'), 0)
         - coalesce(sum(amount) FILTER (WHERE event_type = 'refund'), 0) AS net_revenue,
       count(DISTINCT user_id) AS active_users
FROM app_events_silver
GROUP BY date_trunc('hour', ts), country;

-- gold: per user
CREATE MATERIALIZED VIEW user_summary AS
SELECT user_id,
       count(*) AS events,
       bool_or(event_type = 'signup') AS signed_up,
       coalesce(sum(amount) FILTER (WHERE event_type = 'purchase'), 0) AS spent,
       min(ts) AS first_seen,
       max(ts) AS last_seen
FROM app_events_silver
GROUP BY user_id;

-- Not built yet, where this pipeline would use them: EXPECT constraints on
-- silver (CONSTRAINT known_type EXPECT (…) ON VIOLATION DROP ROW) would
-- count each rule's violations in streamlake.data_quality and send dropped
-- rows to streamlake.dead_letters; today the WHERE clause drops them
-- silently and quality.sql shows how to count them per rule.
