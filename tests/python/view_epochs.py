"""Prints the `streamlake.epoch` of every snapshot of a view's table, one a
line, oldest first."""
import sys

from common import open_catalog

catalog = open_catalog(sys.argv[1])
table = catalog.load_table(sys.argv[2])
for snapshot in sorted(table.snapshots(), key=lambda s: s.sequence_number or 0):
    epoch = snapshot.summary.additional_properties.get("streamlake.epoch") if snapshot.summary else None
    if epoch is not None:
        print(epoch)
