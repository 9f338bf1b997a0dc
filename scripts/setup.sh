# Sourced by scripts/run.sh and scripts/test.sh: installs system packages and
# the Python venv the tests use, and points cargo at a cache outside the
# clone. Every step checks first, so a warm machine skips them all.

CACHE="${STREAMLAKE_CACHE:-$HOME/.cache/streamlake}"
mkdir -p "$CACHE"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
if [ "${CI:-}" = "true" ]; then
  export CARGO_INCREMENTAL=0
fi

section() { printf '\n== %s ==\n' "$*"; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

install_system_packages() {
  local missing=()
  command -v cc >/dev/null 2>&1 || missing+=(build-essential)
  command -v make >/dev/null 2>&1 || missing+=(make)
  command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
  # librdkafka is built from source (bundled) with TLS for SASL_SSL brokers.
  [ -f /usr/include/openssl/ssl.h ] || missing+=(libssl-dev)
  [ -f /usr/include/zlib.h ] || missing+=(zlib1g-dev)
  command -v psql >/dev/null 2>&1 || missing+=(postgresql-client)
  command -v python3 >/dev/null 2>&1 || missing+=(python3)
  python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
  command -v ps >/dev/null 2>&1 || missing+=(procps)
  # pgjdbc and a JDK for the JDBC client test (tests/java, run as a
  # single-file source program, so it needs the compiler).
  command -v javac >/dev/null 2>&1 || missing+=(default-jdk-headless)
  [ -f /usr/share/java/postgresql.jar ] || missing+=(libpostgresql-jdbc-java)
  # node-postgres for the Node client test (tests/node).
  command -v node >/dev/null 2>&1 || missing+=(nodejs)
  command -v npm >/dev/null 2>&1 || missing+=(npm)
  # The PostgreSQL server is the oracle of the view tests.
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
  if [ "${#missing[@]}" -gt 0 ]; then
    section "installing system packages: ${missing[*]}"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}"
  fi
}

install_python_venv() {
  local venv="$CACHE/venv" req="tests/python/requirements.txt"
  local stamp="$venv/.requirements-$(sha256sum "$req" | cut -c1-16)"
  if [ ! -f "$stamp" ]; then
    section "creating the Python test venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check -r "$req"
    touch "$stamp"
  fi
  export STREAMLAKE_PYTHON="$venv/bin/python"
}

install_node_modules() {
  local dir="$CACHE/node" version="8.16.3"
  if ! grep -qs "\"version\": \"$version\"" "$dir/node_modules/pg/package.json"; then
    section "installing node-postgres $version"
    mkdir -p "$dir"
    npm install --prefix "$dir" --no-audit --no-fund --silent "pg@$version"
  fi
  export STREAMLAKE_NODE_MODULES="$dir/node_modules"
}

# tansu, a Kafka-compatible broker, is the real broker of the Kafka tests.
# Built once (a cheaper release profile: opt-level 1, no LTO; ~10 min on
# two idle cores) and cached outside the clone.
install_tansu() {
  local version="0.6.0"
  local root="$CACHE/tansu-$version"
  if [ ! -x "$root/bin/tansu" ]; then
    section "building the tansu broker $version (once; cached in $root)"
    CARGO_TARGET_DIR="$CACHE/tansu-build" \
    CARGO_PROFILE_RELEASE_OPT_LEVEL=1 CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
    CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_DEBUG=false \
      cargo install "tansu@$version" --locked --features dynostore,libsql --root "$root" --quiet
  fi
  export STREAMLAKE_TANSU="$root/bin/tansu"
}

install_system_packages
install_python_venv
install_node_modules
install_tansu
