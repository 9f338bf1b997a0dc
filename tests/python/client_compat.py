"""The same client calls against streamlake and the PostgreSQL oracle, with
the same schema and rows: psycopg 3 (text and binary results, TypeInfo,
session TimeZone, repeated parameters, a named cursor, binary COPY),
psycopg 2 (results, type codes, a named cursor), SQLAlchemy's inspector and
pandas (read_sql_table, read_sql_query). Every answer must be equal. Usage: client_compat.py STREAMLAKE_DSN POSTGRES_DSN"""
import sys

import pandas as pd
import psycopg
import psycopg2
import sqlalchemy as sa
from psycopg.types import TypeInfo

SETUP = """
CREATE TABLE readings (id INT PRIMARY KEY, at TIMESTAMPTZ NOT NULL, local TIMESTAMP,
                       value NUMERIC, price NUMERIC(12,4), ratio DOUBLE PRECISION, label TEXT);
INSERT INTO readings VALUES
  (1, '2024-03-10 06:59:59.5+00', '2024-03-10 01:00:00', 10.5, 3, 0.25, 'a'),
  (2, '2024-03-10 07:00:00+00', '2024-03-10 02:30:00.125', 3, 1.2345, 1e20, NULL),
  (3, '1999-12-31 23:59:59.999999+00', NULL, 0.000001, -7.5, NULL, 'c')
"""


def answers(dsn):
    out = {}
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        for stmt in SETUP.strip().split(";\n"):
            conn.execute(stmt)
        for name in ["numeric", "timestamptz", "int4", "text", "float8", "_int4"]:
            info = TypeInfo.fetch(conn, name)
            out[f"TypeInfo {name}"] = info and (info.name, info.oid, info.array_oid, info.regtype)
        q = "SELECT * FROM readings ORDER BY id"
        for binary in [False, True]:
            rows = conn.cursor(binary=binary).execute(q).fetchall()
            out[f"rows binary={binary}"] = rows
            # str() shows a Decimal's scale: 10.5, not 10.5000000000.
            out[f"str binary={binary}"] = [[str(v) for v in r] for r in rows]
        for tz in ["America/New_York", "Asia/Kolkata"]:
            conn.execute(f"SET TIME ZONE '{tz}'")
            out[f"TimeZone status {tz}"] = conn.info.parameter_status("TimeZone")
            out[f"at {tz}"] = [
                (r[0], r[1].isoformat())
                for r in conn.execute("SELECT id, at FROM readings ORDER BY id").fetchall()
            ]
        conn.execute("SET TIME ZONE 'UTC'")
        # psycopg's COPY API, binary and text.
        cur = conn.cursor()
        q = "COPY (SELECT id, at, value, price, ratio FROM readings ORDER BY id) TO STDOUT"
        with cur.copy(q + " (FORMAT binary)") as copy:
            copy.set_types(["int4", "timestamptz", "numeric", "numeric", "float8"])
            out["copy binary"] = list(copy.rows())
        with cur.copy(q) as copy:
            out["copy text"] = list(copy.rows())
        out["repeated params"] = conn.execute(
            "SELECT id FROM readings WHERE id = %(a)s OR id = %(a)s + 1 ORDER BY id", {"a": 1}
        ).fetchall()
        out["settings"] = [
            conn.execute(f"SHOW {s}").fetchone()[0]
            for s in ["transaction_isolation", "standard_conforming_strings", "search_path",
                      "transaction_read_only", "client_encoding"]
        ]
        cur = conn.execute("SELECT current_database(), current_user, session_user")
        out["select list names"] = [d.name for d in cur.description][1:]
    # A named (server-side) cursor: DECLARE, FETCH and CLOSE through the
    # extended protocol.
    with psycopg.connect(dsn) as conn:
        with conn.cursor(name="pieces") as cur:
            cur.execute("SELECT id, value, at FROM readings ORDER BY id")
            out["named cursor"] = (cur.fetchmany(2), cur.fetchone(), cur.fetchall())
            out["named cursor description"] = [d.name for d in cur.description]
    url = "postgresql+psycopg://" + (
        "{user}@{host}:{port}/{dbname}".format(**dict(kv.split("=") for kv in dsn.split()))
    )
    insp = sa.inspect(sa.create_engine(url))
    out["sqlalchemy columns"] = [
        (c["name"], str(c["type"]), getattr(c["type"], "timezone", None), c["nullable"])
        for c in insp.get_columns("readings")
    ]
    out["sqlalchemy pk"] = insp.get_pk_constraint("readings")
    out["sqlalchemy has_table"] = (insp.has_table("readings"), insp.has_table("nope"))
    # pandas over SQLAlchemy: whole-table reflection and a query, with the
    # dtypes pandas infers from the types the server reports.
    engine = sa.create_engine(url)
    frame = pd.read_sql_table("readings", engine).sort_values("id")
    out["pandas read_sql_table"] = (
        [str(t) for t in frame.dtypes],
        frame.astype(object).where(frame.notna(), None).values.tolist(),
    )
    frame = pd.read_sql_query(
        "SELECT label, count(*) AS n, sum(price) AS total FROM readings GROUP BY label ORDER BY label",
        engine,
    )
    out["pandas read_sql_query"] = (
        [str(t) for t in frame.dtypes],
        frame.astype(object).where(frame.notna(), None).values.tolist(),
    )
    # psycopg 2: the simple protocol, its type codes, a named cursor.
    with psycopg2.connect(dsn) as conn2:
        cur = conn2.cursor()
        cur.execute("SET TIME ZONE 'UTC'")
        cur.execute("SELECT id, at, value, price, ratio, label FROM readings ORDER BY id")
        out["psycopg2 rows"] = cur.fetchall()
        out["psycopg2 type codes"] = [d.type_code for d in cur.description]
        named = conn2.cursor(name="p2")
        named.itersize = 2
        named.execute("SELECT id, label FROM readings ORDER BY id")
        out["psycopg2 named cursor"] = list(named)
        named.close()
    return out


lake, pg = answers(sys.argv[1]), answers(sys.argv[2])
bad = [k for k in pg if lake.get(k) != pg[k]]
for k in bad:
    print(f"{k}:\n  streamlake: {lake.get(k)!r}\n  postgres:   {pg[k]!r}", file=sys.stderr)
if bad:
    sys.exit(1)
print("client compat checks passed")
