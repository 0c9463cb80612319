#!/usr/bin/env bash
# Autobahn|Testsuite's client conformance cases against Shoal's WebSocket client: starts the rig's
# fuzzingserver (../shared/autobahn/serve.sh) on a free loopback port, runs shoal-autobahn-client
# against it, and fails on any case whose verdict is not OK, NON-STRICT, INFORMATIONAL or
# UNIMPLEMENTED (the close column counts too: --strict-close).
#
#   scripts/autobahn-client.sh [--compression] [CASES]     (CASES: rig patterns, default 1-7, 9, 10)
#
# Without the rig beside the checkout it says SKIPPED loudly and exits 0 (conformance then not
# checked), as test.sh does. Environment: SHOAL_AUTOBAHN_DIR (the rig), SHOAL_AUTOBAHN_CLIENT_BIN
# (a built shoal-autobahn-client; default: swift build -c release of it).
# Last line: "autobahn-client: N passed, M failed" (the rig's); exit 0 only if M is 0 and every case ran.
set -uo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
AUTOBAHN_DIR="${SHOAL_AUTOBAHN_DIR:-$REPO/../shared/autobahn}"
if [ ! -x "$AUTOBAHN_DIR/serve.sh" ]; then
  echo "autobahn-client.sh: WARNING: SKIPPED: the Autobahn rig is not at $AUTOBAHN_DIR (it lives beside the checkout;"
  echo "autobahn-client.sh: WARNING: set SHOAL_AUTOBAHN_DIR to run it). Client conformance was NOT checked."
  exit 0
fi
if ! command -v swift >/dev/null 2>&1 && [ -x /opt/swift/usr/bin/swift ]; then
  export PATH="/opt/swift/usr/bin:$PATH"
fi
BIN="${SHOAL_AUTOBAHN_CLIENT_BIN:-}"
if [ -z "$BIN" ]; then
  swift build -c release --product shoal-autobahn-client || { echo "autobahn-client.sh: build failed"; exit 1; }
  BIN="$REPO/.build/release/shoal-autobahn-client"
fi
WORK="$(mktemp -d "${TMPDIR:-/tmp}/shoal-autobahn-client.XXXXXX")"
SPID=""
cleanup() {
  if [ -n "$SPID" ] && kill -0 "$SPID" 2>/dev/null; then kill -TERM "$SPID" 2>/dev/null; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
"$AUTOBAHN_DIR/serve.sh" --port "$port" --strict-close --outdir "$REPO/.build/autobahn-client-report" "$@" \
  >"$WORK/serve.log" 2>&1 </dev/null &
SPID=$!
ready=0
for _ in $(seq 1 300); do
  if ! kill -0 "$SPID" 2>/dev/null; then break; fi
  if python3 -c "import socket; socket.create_connection(('127.0.0.1',$port),1).close()" 2>/dev/null; then ready=1; break; fi
  sleep 0.1
done
if [ $ready != 1 ]; then
  echo "autobahn-client.sh: the fuzzingserver did not start:"; tail -n 20 "$WORK/serve.log"
  exit 1
fi
"$BIN" --agent shoal "ws://127.0.0.1:$port"; crc=$?
# The fuzzingserver prints its summary and exits once the client asked for the reports.
for _ in $(seq 1 600); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.1; done
wait "$SPID"; src=$?
SPID=""
cat "$WORK/serve.log"
read -r passed failed < <(sed -n 's/^autobahn-client: \([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p' "$WORK/serve.log" | tail -n1)
if [ -z "${passed:-}" ]; then echo "autobahn-client.sh: no summary from the fuzzingserver"; exit 1; fi
if [ $crc != 0 ] || [ $src != 0 ] || [ "${failed:-1}" != 0 ]; then
  echo "autobahn-client.sh: FAILED (client exit $crc, fuzzingserver exit $src)"
  exit 1
fi
exit 0
