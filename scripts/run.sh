#!/usr/bin/env bash
# Builds streamlake and starts the playground: the server on 127.0.0.1:4566
# with an embedded Kafka-compatible broker, a trade generator and the
# pipeline of sql/playground.sql (data under ./streamlake-playground).
# Extra arguments go to `streamlake playground` (see --help).
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${STREAMLAKE_CACHE:-$HOME/.cache/streamlake}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
if ! command -v cc >/dev/null 2>&1 || ! command -v make >/dev/null 2>&1 \
  || [ ! -f /usr/include/openssl/ssl.h ] || [ ! -f /usr/include/zlib.h ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO=sudo; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq build-essential pkg-config libssl-dev zlib1g-dev postgresql-client
fi
cargo build --release --locked
exec "$CARGO_TARGET_DIR/release/streamlake" playground "$@"
