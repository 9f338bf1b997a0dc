"""Prints how many data files the table's current snapshot has."""
import sys

from common import open_catalog

catalog = open_catalog(sys.argv[1])
table = catalog.load_table(sys.argv[2])
print(len(list(table.scan().plan_files())))
