"""Every materialized view's Iceberg table, read by pyiceberg (which applies
the position delete files views commit), holds exactly the rows SELECT
returns over pgwire. Values compare as Python objects (psycopg and pyarrow
both decode to Decimal, datetime, float, list …); floats to 12 significant
digits. Usage: views_match.py PORT CATALOG_DB"""
import datetime
import decimal
import sys

import psycopg

from common import fail, open_catalog


def norm(v):
    if isinstance(v, float):
        return float(f"{v:.12g}")
    if isinstance(v, decimal.Decimal):
        return float(f"{float(v):.12g}")
    if isinstance(v, datetime.datetime) and v.tzinfo is not None:
        return v.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    if isinstance(v, (list, tuple)):
        return tuple(norm(x) for x in v)
    return v


def key(row):
    return tuple((x is None, repr(x)) for x in row)


port, catalog_db = sys.argv[1], sys.argv[2]
catalog = open_catalog(catalog_db)
with psycopg.connect(f"host=127.0.0.1 port={port} user=tester dbname=dev") as conn:
    views = [r[0] for r in conn.execute("SELECT matviewname FROM pg_catalog.pg_matviews")]
    if not views:
        fail("no materialized views listed in pg_matviews")
    for name in sorted(views):
        want = sorted((tuple(norm(v) for v in r) for r in conn.execute(f"SELECT * FROM {name}")), key=key)
        table = catalog.load_table(f"public.{name}")
        got = sorted(
            (tuple(norm(v) for v in rec.values()) for rec in table.scan().to_arrow().to_pylist()),
            key=key,
        )
        if got != want:
            missing = [r for r in want if r not in got][:5]
            extra = [r for r in got if r not in want][:5]
            fail(f"view {name}: pyiceberg sees {len(got)} rows, SELECT {len(want)}\n"
                 f"missing from Iceberg: {missing}\nextra in Iceberg: {extra}")
        print(f"{name}: {len(got)} rows match")
print(f"{len(views)} views match")
