"""Prints, as one JSON line per table, every snapshot as pyiceberg sees
it, oldest first: its operation (append, overwrite, delete, ...), the
summary's added delete files and position/equality deletes, and the
delete files its manifests reach (content other than data); then the
current rows in pyiceberg_read.py's text form.
Usage: iceberg_operations.py CATALOG_DB NAMESPACE.TABLE..."""
import json
import sys

from pyiceberg.manifest import DataFileContent, ManifestContent

from common import fail, open_catalog


def operations(catalog, name):
    table = catalog.load_table(name)
    io = table.io
    out = {"name": name, "snapshots": []}
    for s in sorted(table.snapshots(), key=lambda s: s.sequence_number or 0):
        summary = s.summary
        props = summary.additional_properties if summary else {}
        delete_files = 0
        try:
            for m in s.manifests(io):
                if m.content == ManifestContent.DELETES:
                    for e in m.fetch_manifest_entry(io, discard_deleted=True):
                        delete_files += 1
                    continue
                for e in m.fetch_manifest_entry(io, discard_deleted=True):
                    if e.data_file.content != DataFileContent.DATA:
                        delete_files += 1
        except Exception as e:  # noqa: BLE001 - report which snapshot broke
            fail(f"snapshot {s.snapshot_id} of {name} is unreadable: {e!r}")
        out["snapshots"].append(
            {
                "operation": str(summary.operation.value) if summary else None,
                "added_delete_files": props.get("added-delete-files"),
                "deleted_data_files": props.get("deleted-data-files"),
                "delete_files": delete_files,
            }
        )
    rows = [[None if v is None else str(v) for v in r.values()] for r in table.scan().to_arrow().to_pylist()]
    out["rows"] = sorted(rows, key=lambda r: [("" if v is None else v) for v in r])
    return out


catalog = open_catalog(sys.argv[1])
for name in sys.argv[2:]:
    print(json.dumps(operations(catalog, name)))
