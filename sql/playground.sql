-- The playground: a few demo tables with rows, created if missing.
-- Run by `streamlake playground` at start; safe to run again.
CREATE TABLE IF NOT EXISTS symbols (
    symbol  VARCHAR PRIMARY KEY,
    name    VARCHAR NOT NULL,
    sector  VARCHAR,
    fx_rate NUMERIC(12, 6)
);
CREATE TABLE IF NOT EXISTS trades (
    trade_id VARCHAR PRIMARY KEY,
    account  VARCHAR NOT NULL,
    symbol   VARCHAR NOT NULL,
    amount   NUMERIC(18, 4),
    status   VARCHAR,
    ts       TIMESTAMPTZ
);
INSERT INTO symbols
SELECT * FROM (VALUES
    ('AAPL', 'Apple',     'tech',    1.0),
    ('MSFT', 'Microsoft', 'tech',    1.0),
    ('SAP',  'SAP',       'tech',    1.08),
    ('BMW',  'BMW',       'autos',   1.08),
    ('NESN', 'Nestle',    'staples', 1.13)
) AS v(symbol, name, sector, fx_rate)
WHERE (SELECT count(*) FROM symbols) = 0;
INSERT INTO trades
SELECT * FROM (VALUES
    ('t-1', 'A-17', 'AAPL', 120.5,  'filled',    TIMESTAMPTZ '2026-11-22 09:00:01+00'),
    ('t-2', 'A-17', 'SAP',  80.0,   'filled',    TIMESTAMPTZ '2026-11-22 09:00:07+00'),
    ('t-3', 'B-02', 'MSFT', 310.25, 'pending',   TIMESTAMPTZ '2026-11-22 09:00:30+00'),
    ('t-4', 'B-02', 'BMW',  -5.0,   'cancelled', TIMESTAMPTZ '2026-11-22 09:01:02+00'),
    ('t-5', 'C-99', 'NESN', 42.0,   'filled',    TIMESTAMPTZ '2026-11-22 09:01:45+00')
) AS v(trade_id, account, symbol, amount, status, ts)
WHERE (SELECT count(*) FROM trades) = 0;
