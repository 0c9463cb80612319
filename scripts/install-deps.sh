#!/usr/bin/env bash
# Install what Shoal's build and tests need, on a fresh Debian bookworm / Ubuntu.
# Idempotent: installs only what is missing.
#
#   scripts/install-deps.sh [--no-test-deps]
#
#   - Swift: must already be installed (it is not an apt package here); /opt/swift/usr/bin
#     is used if `swift` is not on PATH.
#   - apt: liburing-dev zlib1g-dev libssl-dev libhiredis-dev pkg-config; for tests redis-server redis-tools nodejs node-ws python3-venv python3-lib2to3 chromium,
#     and nginx haproxy openssl (Tests/IntegrationTests/test_deploy.py starts its own nginx and
#     haproxy on loopback ports; on a host with systemd apt also starts their default services:
#     `systemctl disable --now nginx haproxy` if they are not wanted), and prometheus for
#     `promtool check metrics` (19 MB download, 96 MB installed: the package ships no promtool alone)
#     (apt-get update runs once, only if something is missing)
#   - Python venv at ${SHOAL_VENV:-$HOME/.cache/shoal-venv} with websockets + pytest
#   - the Autobahn|Testsuite rig (../shared/autobahn beside the repo, or $SHOAL_AUTOBAHN_DIR)
#
# --no-test-deps: only what building and running the server needs (Swift, liburing, pkg-config).
# --generators: also the other load generators of Benchmarks/scripts/generators.py: apt tsung,
#   and a venv at ${LOCUST_VENV:-$HOME/.cache/locust-venv} with locust + websocket-client
#   (uWebSockets' load_test is built by hand from its public sources: docs/shoal-bench.md)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${SHOAL_VENV:-$HOME/.cache/shoal-venv}"
AUTOBAHN_DIR="${SHOAL_AUTOBAHN_DIR:-$REPO/../shared/autobahn}"
WEBSOCKETS_VERSION="17.4"
PYTEST_VERSION="9.2.0"
TEST_DEPS=1
GENERATORS=0
LOCUST_VENV="${LOCUST_VENV:-$HOME/.cache/locust-venv}"
LOCUST_VERSION="2.47.0"
WEBSOCKET_CLIENT_VERSION="1.9.2"
for a in "$@"; do
  case "$a" in
    --no-test-deps) TEST_DEPS=0 ;;
    --generators) GENERATORS=1 ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "install-deps.sh: unknown argument $a" >&2; exit 2 ;;
  esac
done

say() { echo "install-deps: $*" >&2; }

# --- Swift -------------------------------------------------------------------
if ! command -v swift >/dev/null 2>&1 && [ -x /opt/swift/usr/bin/swift ]; then
  export PATH="/opt/swift/usr/bin:$PATH"
fi
if ! command -v swift >/dev/null 2>&1; then
  say "ERROR: 'swift' not found (not on PATH, not at /opt/swift/usr/bin)."
  say "Swift cannot be installed with apt here: install a Swift 6.1+ toolchain (swift.org tarball) under /opt/swift and re-run."
  exit 1
fi

# --- apt packages ------------------------------------------------------------
APT_PKGS=(liburing-dev zlib1g-dev libssl-dev libhiredis-dev pkg-config)
if [ "$TEST_DEPS" = 1 ]; then APT_PKGS+=(nodejs node-ws python3-venv python3-lib2to3 chromium nginx haproxy openssl prometheus redis-server redis-tools); fi
if [ "$GENERATORS" = 1 ]; then APT_PKGS+=(tsung python3-venv); fi
missing=()
for p in "${APT_PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ "${#missing[@]}" -gt 0 ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    say "ERROR: need packages ${missing[*]} but apt-get is not available"; exit 1
  fi
  SUDO=""; if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  say "apt: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
if ! pkg-config --exists liburing; then
  say "ERROR: pkg-config does not find liburing (liburing-dev)"; exit 1
fi

# --- other load generators (Benchmarks/scripts/generators.py) -------------------
if [ "$GENERATORS" = 1 ] && ! "$LOCUST_VENV/bin/python" -c 'import locust, websocket' >/dev/null 2>&1; then
  say "locust venv at $LOCUST_VENV (locust==$LOCUST_VERSION websocket-client==$WEBSOCKET_CLIENT_VERSION)"
  [ -x "$LOCUST_VENV/bin/python" ] || "${PYTHON:-python3}" -m venv "$LOCUST_VENV"
  "$LOCUST_VENV/bin/python" -m pip install -q "locust==$LOCUST_VERSION" "websocket-client==$WEBSOCKET_CLIENT_VERSION"
fi

if [ "$TEST_DEPS" = 0 ]; then
  say "ok: $(swift --version 2>&1 | head -n1); liburing $(pkg-config --modversion liburing)"
  exit 0
fi

if ! NODE_PATH=/usr/share/nodejs node -e 'require("ws")' >/dev/null 2>&1; then
  say "ERROR: node cannot load the 'ws' module (NODE_PATH=/usr/share/nodejs)"; exit 1
fi

# --- Python venv for the integration tests ------------------------------------
venv_ok() {
  [ -x "$VENV/bin/python" ] && "$VENV/bin/python" - "$WEBSOCKETS_VERSION" "$PYTEST_VERSION" <<'EOF' 2>/dev/null
import sys, websockets, pytest
sys.exit(0 if (websockets.__version__, pytest.__version__) == (sys.argv[1], sys.argv[2]) else 1)
EOF
}
if ! venv_ok; then
  PY="${PYTHON:-python3}"
  if ! "$PY" -c 'import venv, ensurepip' >/dev/null 2>&1; then PY=/usr/bin/python3; fi
  say "python venv at $VENV (websockets==$WEBSOCKETS_VERSION pytest==$PYTEST_VERSION)"
  if [ ! -x "$VENV/bin/python" ]; then "$PY" -m venv "$VENV"; fi
  "$VENV/bin/python" -m pip install -q "websockets==$WEBSOCKETS_VERSION" "pytest==$PYTEST_VERSION"
  venv_ok || { say "ERROR: venv at $VENV is not usable"; exit 1; }
fi

# --- Autobahn rig ---------------------------------------------------------------
if [ ! -x "$AUTOBAHN_DIR/run.sh" ]; then
  # The rig lives beside the checkout, not in it; a clone without it still builds and tests.
  say "WARNING: Autobahn rig not found at $AUTOBAHN_DIR (set SHOAL_AUTOBAHN_DIR): the Autobahn stages will be skipped"
  say "ok: $(swift --version 2>&1 | head -n1); liburing $(pkg-config --modversion liburing); node $(node --version); venv $VENV; no autobahn rig"
  exit 0
fi
AB_VENV_DIR="${AB_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/autobahn-py3/venv}"
if ! { [ -x "$AB_VENV_DIR/bin/python" ] && "$AB_VENV_DIR/bin/python" -c 'import autobahntestsuite.py3compat' >/dev/null 2>&1; }; then
  say "installing the Autobahn rig ($AUTOBAHN_DIR/install.sh)"
  bash "$AUTOBAHN_DIR/install.sh"
fi
# The Autobahn stage over wss:// (scripts/autobahn-wss.py): Twisted's TLS client needs these two.
if ! "$AB_VENV_DIR/bin/python" -c 'import OpenSSL, service_identity' >/dev/null 2>&1; then
  say "adding pyOpenSSL and service_identity to the Autobahn venv (wss:// cases)"
  "$AB_VENV_DIR/bin/pip" install -q "pyOpenSSL>=24" "service_identity>=24"
fi

say "ok: $(swift --version 2>&1 | head -n1); liburing $(pkg-config --modversion liburing); node $(node --version); venv $VENV; autobahn rig $AUTOBAHN_DIR"
