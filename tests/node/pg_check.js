// node-postgres (npm `pg`) with its default type parsers against streamlake
// and the PostgreSQL oracle: the same queries must give the same fields
// (names and type OIDs) and the same parsed values. Prints the first
// difference and exits 1. Usage: node pg_check.js STREAMLAKE_URL POSTGRES_URL
const { Client } = require("pg");

const SETUP = [
  `CREATE TABLE readings (id INT PRIMARY KEY, at TIMESTAMPTZ NOT NULL, local TIMESTAMP,
     value NUMERIC, price NUMERIC(12,4), ratio DOUBLE PRECISION, label TEXT, big BIGINT,
     ok BOOLEAN, day DATE)`,
  `INSERT INTO readings VALUES
     (1, '2024-03-10 06:59:59.5+00', '2024-03-10 01:00:00', 10.5, 3, 0.25, 'a', 9000000000, true, '2024-03-10'),
     (2, '2024-03-10 07:00:00+00', '2024-03-10 02:30:00.125', 3, 1.2345, 1e20, NULL, -1, false, NULL),
     (3, '1999-12-31 23:59:59.999999+00', NULL, 0.000001, -7.5, NULL, 'c', NULL, NULL, '1999-12-31')`,
];

const QUERIES = [
  ["SELECT * FROM readings ORDER BY id", []],
  ["SELECT id, at::text, value::text FROM readings WHERE id = $1 OR id = $1 + 1 ORDER BY id", [1]],
  ["SELECT count(*), sum(value), max(at), min(price) FROM readings", []],
  ["SELECT $2::text AS b, $1::int AS a", [7, "s"]],
  ["SHOW TimeZone", []],
];

async function answers(url) {
  const c = new Client({ connectionString: url });
  await c.connect();
  const out = [];
  try {
    await c.query("SET TIME ZONE 'UTC'");
    for (const s of SETUP) await c.query(s);
    for (const [sql, params] of QUERIES) {
      const r = await c.query(sql, params);
      out.push({
        sql,
        fields: r.fields.map((f) => [f.name, f.dataTypeID]),
        rows: JSON.stringify(r.rows),
      });
    }
    // Simple protocol too (no parameters).
    const r = await c.query({ text: "SELECT id, at, value FROM readings ORDER BY id", rowMode: "array" });
    out.push({ sql: "rowMode array", fields: r.fields.map((f) => [f.name, f.dataTypeID]), rows: JSON.stringify(r.rows) });
  } finally {
    await c.end();
  }
  return out;
}

(async () => {
  const [lake, pg] = [await answers(process.argv[2]), await answers(process.argv[3])];
  let bad = 0;
  for (let i = 0; i < pg.length; i++) {
    const a = JSON.stringify(lake[i]);
    const b = JSON.stringify(pg[i]);
    if (a !== b) {
      console.error(`differs:\n  streamlake: ${a}\n  postgres:   ${b}`);
      bad++;
    }
  }
  if (bad) process.exit(1);
  console.log("node-postgres checks passed");
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
