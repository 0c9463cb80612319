#!/usr/bin/env bash
# Build Shoal and install it on this host.
#
#   Deploy/install.sh [--prefix DIR] [--destdir DIR] [--system] [--no-apt] [--no-build] [--packages]
#
#   (default)       apt: liburing2 zlib1g libssl3 libhiredis0.14 libstdc++6 (runtime), liburing-dev zlib1g-dev libssl-dev libhiredis-dev
#                   pkg-config (build), if missing;
#                   build the release binary with the Swift runtime linked statically, so the
#                   host needs no Swift toolchain at run time, only the runtime packages;
#                   install  PREFIX/bin/shoal  (one file: the demo page is compiled in)
#                            PREFIX/share/doc/shoal/operations.md
#   --prefix DIR    install under DIR instead of /usr/local (the unit's paths follow it)
#   --destdir DIR   stage everything under DIR (packaging, tests): DIR/usr/local/bin/shoal...
#                   Nothing outside DIR is touched except apt packages (use --no-apt) and the
#                   build directory; no systemctl, no sysctl.
#   --system        also install the host configuration:
#                            /etc/systemd/system/shoal.service   (Deploy/systemd)
#                            /etc/sysctl.d/90-shoal.conf         (Deploy/sysctl), applied now
#                            /etc/security/limits.d/shoal-limits.conf (Deploy/limits)
#                   then `systemctl daemon-reload`. It never enables, starts or restarts shoal.
#   --no-apt        do not install packages (fail if the build needs one that is missing)
#   --no-build      install the binary from the previous build of this script
#   --packages      print the apt packages it installs (runtime, build) and exit
#
# Idempotent: files that are already identical are left alone and reported "unchanged".
# The build uses its own directory (.build-install/, git-ignored; $SHOAL_BUILD_DIR overrides
# it) so it neither waits for
# nor invalidates a developer's .build/.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PREFIX=/usr/local
DESTDIR=""
SYSTEM=0
APT=1
BUILD=1
SCRATCH="${SHOAL_BUILD_DIR:-$REPO/.build-install}"

usage() { sed -n '2,34p' "$0" | sed 's/^# \{0,1\}//'; }
# What the binary links (readelf -d: liburing.so.2, libz.so.1, libssl.so.3/libcrypto.so.3, libhiredis.so.0.14, libstdc++.so.6, and libc6's own
# libraries) and what building it needs (headers and .pc files SwiftPM finds them with).
RUNTIME_PKGS=(liburing2 zlib1g libssl3 libhiredis0.14 libstdc++6)
BUILD_PKGS=(liburing-dev zlib1g-dev libssl-dev libhiredis-dev pkg-config)
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) PREFIX="${2:?--prefix needs a directory}"; shift 2 ;;
    --prefix=*) PREFIX="${1#*=}"; shift ;;
    --destdir) DESTDIR="${2:?--destdir needs a directory}"; shift 2 ;;
    --destdir=*) DESTDIR="${1#*=}"; shift ;;
    --system) SYSTEM=1; shift ;;
    --no-apt) APT=0; shift ;;
    --no-build) BUILD=0; shift ;;
    -h|--help) usage; exit 0 ;;
    --packages) echo "runtime: ${RUNTIME_PKGS[*]}"; echo "build: ${BUILD_PKGS[*]}"; exit 0 ;;
    *) echo "install.sh: unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$PREFIX" in /*) ;; *) echo "install.sh: --prefix must be an absolute path" >&2; exit 2 ;; esac
if [ -n "$DESTDIR" ]; then
  mkdir -p "$DESTDIR"
  DESTDIR="$(cd "$DESTDIR" && pwd)"
fi
PREFIX="${PREFIX%/}"

say() { echo "install: $*"; }
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

# --- packages ----------------------------------------------------------------------------
if [ "$APT" = 1 ]; then
  pkgs=("${RUNTIME_PKGS[@]}")
  if [ "$BUILD" = 1 ]; then pkgs+=("${BUILD_PKGS[@]}"); fi
  missing=()
  for p in "${pkgs[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
      missing+=("$p")
    fi
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    command -v apt-get >/dev/null 2>&1 || { say "ERROR: need ${missing[*]} but apt-get is not available"; exit 1; }
    say "apt: installing ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
  else
    say "apt: ${pkgs[*]} already installed"
  fi
fi

# --- build -------------------------------------------------------------------------------
if [ "$BUILD" = 1 ]; then
  if ! command -v swift >/dev/null 2>&1 && [ -x /opt/swift/usr/bin/swift ]; then
    export PATH="/opt/swift/usr/bin:$PATH"
  fi
  command -v swift >/dev/null 2>&1 || { say "ERROR: 'swift' not found (PATH, /opt/swift/usr/bin); install a Swift 6.1+ toolchain"; exit 1; }
  say "build: swift build -c release --product shoal --static-swift-stdlib (scratch $SCRATCH)"
  (cd "$REPO" && swift build -c release --product shoal --static-swift-stdlib --scratch-path "$SCRATCH")
fi
BIN_DIR="$SCRATCH/release"
[ -x "$BIN_DIR/shoal" ] || { say "ERROR: no build at $BIN_DIR/shoal (run without --no-build)"; exit 1; }

# --- install helpers (idempotent) ----------------------------------------------------------
# install_file MODE SRC DEST: copy when missing or different, say which.
install_file() {
  local mode="$1" src="$2" dest="$3"
  if [ -f "$dest" ] && cmp -s "$src" "$dest"; then
    say "unchanged  $dest"
    return 1
  fi
  mkdir -p "$(dirname "$dest")"
  # GNU install unlinks the old file first: replacing a running binary is safe.
  install -m "$mode" "$src" "$dest"
  say "installed  $dest"
}
# render SRC: the file with /usr/local replaced by PREFIX (unit paths), to a temp file.
TMPDIR_INSTALL="$(mktemp -d)"
trap 'rm -rf "$TMPDIR_INSTALL"' EXIT
render() {
  local out
  out="$TMPDIR_INSTALL/$(basename "$1")"
  sed -e "s#/usr/local/bin/shoal#$PREFIX/bin/shoal#g" \
      -e "s#/usr/local/share/doc/shoal#$PREFIX/share/doc/shoal#g" "$1" > "$out"
  echo "$out"
}

# --- binary, docs ------------------------------------------------------------------
install_file 0755 "$BIN_DIR/shoal" "$DESTDIR$PREFIX/bin/shoal" || true
install_file 0644 "$REPO/docs/operations.md" "$DESTDIR$PREFIX/share/doc/shoal/operations.md" || true

# --- host configuration (--system) -----------------------------------------------------------
unit_changed=0
sysctl_changed=0
if [ "$SYSTEM" = 1 ]; then
  if [ -z "$DESTDIR" ] && [ "$(id -u)" != 0 ]; then
    say "ERROR: --system writes /etc: run as root (or with --destdir)"; exit 1
  fi
  if install_file 0644 "$(render "$REPO/Deploy/systemd/shoal.service")" "$DESTDIR/etc/systemd/system/shoal.service"; then
    unit_changed=1
  fi
  if install_file 0644 "$REPO/Deploy/sysctl/90-shoal.conf" "$DESTDIR/etc/sysctl.d/90-shoal.conf"; then
    sysctl_changed=1
  fi
  install_file 0644 "$REPO/Deploy/limits/shoal-limits.conf" "$DESTDIR/etc/security/limits.d/shoal-limits.conf" || true

  if [ -z "$DESTDIR" ]; then
    if [ "$sysctl_changed" = 1 ]; then
      # systemd-sysctl honours the "-" prefix (ignore keys this kernel lacks), as at boot.
      if [ -x /lib/systemd/systemd-sysctl ]; then
        /lib/systemd/systemd-sysctl /etc/sysctl.d/90-shoal.conf && say "applied    /etc/sysctl.d/90-shoal.conf"
      else
        sysctl -p /etc/sysctl.d/90-shoal.conf >/dev/null && say "applied    /etc/sysctl.d/90-shoal.conf"
      fi
    fi
    if [ -d /run/systemd/system ]; then
      if [ "$unit_changed" = 1 ]; then systemctl daemon-reload && say "ran        systemctl daemon-reload"; fi
    else
      say "note: systemd is not running here; the unit is installed but not loaded"
    fi
  fi
fi

# --- summary -----------------------------------------------------------------------------
say "done: $DESTDIR$PREFIX/bin/shoal ($("$DESTDIR$PREFIX/bin/shoal" --help >/dev/null 2>&1 && echo runs || echo 'DOES NOT RUN: check liburing2'))"
if [ -z "$DESTDIR" ] && [ "$SYSTEM" = 1 ]; then
  say "next: systemctl enable --now shoal   (already running? systemctl restart shoal: 5 s drain)"
elif [ -z "$DESTDIR" ]; then
  say "next: $PREFIX/bin/shoal serve --port 8080 --handler chat --path /chat   (or --system for the service)"
fi
