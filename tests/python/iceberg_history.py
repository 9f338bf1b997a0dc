"""Prints, as one JSON line per table, its history as pyiceberg sees it: its
snapshots (id, streamlake.epoch and row count, oldest first; every kept
snapshot is read in full, so a file deleted while a kept snapshot still
lists it fails here), the length of its metadata log, and every file a
kept snapshot reaches (manifest lists, manifests, data and delete files),
and the current rows as pyiceberg_read.py prints them (text, sorted).
Usage: iceberg_history.py CATALOG_DB NAMESPACE.TABLE..."""
import json
import sys

from common import fail, open_catalog



def history(catalog, name):
    table = catalog.load_table(name)
    io = table.io
    snapshots = sorted(table.snapshots(), key=lambda s: s.sequence_number or 0)
    out = {"snapshots": [], "metadata_log": len(table.metadata.metadata_log)}
    reachable = set()
    for s in snapshots:
        props = s.summary.additional_properties if s.summary else {}
        try:
            rows = table.scan(snapshot_id=s.snapshot_id).to_arrow().num_rows
            reachable.add(s.manifest_list)
            for m in s.manifests(io):
                reachable.add(m.manifest_path)
                for e in m.fetch_manifest_entry(io, discard_deleted=True):
                    reachable.add(e.data_file.file_path)
        except Exception as e:  # noqa: BLE001 - report which snapshot broke
            fail(f"snapshot {s.snapshot_id} of {name} is unreadable: {e!r}")
        out["snapshots"].append(
            {"id": s.snapshot_id, "epoch": props.get("streamlake.epoch"), "rows": rows}
        )
    out["reachable"] = sorted(reachable)
    current = table.current_snapshot()
    out["sequence"] = current.sequence_number if current else 0
    rows = [[None if v is None else str(v) for v in r.values()] for r in table.scan().to_arrow().to_pylist()]
    out["rows"] = sorted(rows, key=lambda r: [("" if v is None else v) for v in r])
    return out


catalog = open_catalog(sys.argv[1])
for name in sys.argv[2:]:
    print(json.dumps(history(catalog, name)))
