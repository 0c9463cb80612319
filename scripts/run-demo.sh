#!/usr/bin/env bash
# Build Shoal and run the chat demo: open http://localhost:8080/ in two browser tabs.
#   scripts/run-demo.sh [extra `shoal serve` arguments, e.g. --port 9000]
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
if ! command -v swift >/dev/null 2>&1 && [ -x /opt/swift/usr/bin/swift ]; then
  export PATH="/opt/swift/usr/bin:$PATH"
fi
"$REPO/scripts/install-deps.sh" --no-test-deps
swift build -c release --product shoal
# The demo page is the only site that may open WebSockets here (cross-site WebSocket hijacking,
# docs/security.md): allow the origins the page is served from, on the port in use.
PORT=8080
prev=""
for a in "$@"; do
  if [ "$prev" = "--port" ]; then PORT="$a"; fi
  case "$a" in --port=*) PORT="${a#--port=}" ;; esac
  prev="$a"
done
echo "run-demo: chat demo on http://localhost:$PORT/ (WebSocket path /chat); Ctrl-C stops it" >&2
exec "$REPO/.build/release/shoal" serve --port 8080 --handler chat --path /chat \
  --allow-origin "http://localhost:$PORT" --allow-origin "http://127.0.0.1:$PORT" "$@"
