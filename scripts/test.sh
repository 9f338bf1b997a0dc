#!/usr/bin/env bash
# Runs every streamlake test: unit tests, sqllogictest files, and the
# integration tests against real clients (psql, psycopg, SQLAlchemy, pgjdbc,
# node-postgres, each compared with a PostgreSQL server), a real
# S3-compatible server (moto) and an independent Iceberg reader (pyiceberg).
#
# Installs what it needs on a fresh Debian machine with only the Rust
# toolchain: apt packages, a Python venv and node-postgres. Caches the venv and the cargo
# target directory under $HOME/.cache/streamlake (never required).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

section "checking formatting"
cargo fmt --all -- --check

section "running tests"
# Not under -e: the summary must print when tests fail too.
set +e
cargo test --locked 2>&1 | tee "$CACHE/last-test.log"
status=${PIPESTATUS[0]}
set -e
echo
echo "== summary =="
awk '/^test result:/ { p += $4; f += $6; i += $8 } END { printf "%d passed, %d failed\n", p, f }' "$CACHE/last-test.log"
exit "$status"
