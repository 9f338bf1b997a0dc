"""Helpers shared by the Python checks: open the streamlake catalog with
pyiceberg's own SqlCatalog (an independent Iceberg implementation)."""
import os
import sys

from pyiceberg.catalog.sql import SqlCatalog


def open_catalog(catalog_db: str) -> SqlCatalog:
    props = {"uri": f"sqlite:///{os.path.abspath(catalog_db)}"}
    endpoint = os.environ.get("S3_ENDPOINT")
    if endpoint:
        props.update(
            {
                "s3.endpoint": endpoint,
                "s3.access-key-id": os.environ.get("AWS_ACCESS_KEY_ID", "test"),
                "s3.secret-access-key": os.environ.get("AWS_SECRET_ACCESS_KEY", "test"),
                "s3.region": os.environ.get("AWS_REGION", "us-east-1"),
                "s3.force-virtual-addressing": "false",
            }
        )
    return SqlCatalog("streamlake", **props)


def fail(msg: str) -> None:
    print(msg, file=sys.stderr)
    sys.exit(1)
