"""Reads a table with pyiceberg and prints its rows as JSON lines, sorted,
so the Rust test can compare them with what SELECT returns over pgwire.
Usage: pyiceberg_read.py CATALOG_DB NAMESPACE.TABLE"""
import json
import sys

from common import open_catalog

catalog = open_catalog(sys.argv[1])
table = catalog.load_table(sys.argv[2])
arrow = table.scan().to_arrow()
rows = []
for rec in arrow.to_pylist():
    rows.append([None if v is None else str(v) for v in rec.values()])
rows.sort(key=lambda r: [("" if v is None else v) for v in r])
for r in rows:
    print(json.dumps(r))
print(json.dumps({"snapshot_summary": dict(table.current_snapshot().summary.additional_properties) if table.current_snapshot() else {}}), file=sys.stderr)
