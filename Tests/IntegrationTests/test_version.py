"""`shoal --version`: version, the git commit it was built from, the Swift compiler, and the
loop backend this host allows (as `serve` would choose it)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from conftest import REPO, shoal_bin


def version(env: dict[str, str] | None = None) -> list[str]:
    p = subprocess.run([shoal_bin(), "--version"], capture_output=True, text=True, timeout=30,
                       env={**os.environ, **(env or {})})
    assert p.returncode == 0, (p.returncode, p.stderr)
    return p.stdout.splitlines()


def test_version_names_the_build_and_the_backend():
    lines = version()
    assert len(lines) == 5, lines
    assert re.fullmatch(r"shoal \d+\.\d+\.\d+", lines[0]), lines
    commit = re.fullmatch(r"commit: ([0-9a-f]{12}(-dirty)?|unknown)", lines[1])
    assert commit, lines
    assert re.fullmatch(r"swift: \d+\.\d+( or later)?", lines[2]), lines
    # io_uring names the set-up flags the kernel accepted ("SINGLE_ISSUER|DEFER_TASKRUN|SUBMIT_ALL").
    assert (re.fullmatch(r"event loop backend: io_uring \(([A-Z_]+(\|[A-Z_]+)*|no optional flags)\)", lines[3])
            or lines[3].startswith("event loop backend: epoll")), lines
    # kTLS as this host offers it: the kernel lists "tls" among its TCP upper layer protocols.
    try:
        with open("/proc/sys/net/ipv4/tcp_available_ulp") as f:
            kernel_tls = "tls" in f.read().split()
    except OSError:
        kernel_tls = False
    assert lines[4].startswith("kernel TLS: offered" if kernel_tls else "kernel TLS: unavailable"), lines
    # A binary built from this checkout names one of its commits.
    if commit.group(1) != "unknown" and shutil.which("git"):
        known = subprocess.run(["git", "-C", REPO, "cat-file", "-t", commit.group(1).removesuffix("-dirty")],
                               capture_output=True, text=True, timeout=30)
        assert known.returncode == 0 and known.stdout.strip() == "commit", (lines[1], known.stderr)
    # The compiler on PATH, when it is the one that built the binary, agrees to the minor version.
    swift = shutil.which("swift") or ("/opt/swift/usr/bin/swift" if os.access("/opt/swift/usr/bin/swift", os.X_OK) else None)
    if swift:
        out = subprocess.run([swift, "--version"], capture_output=True, text=True, timeout=60).stdout
        m = re.search(r"Swift version (\d+\.\d+)", out)
        if m and not lines[2].endswith("or later"):
            assert lines[2] == f"swift: {m.group(1)}", (lines[2], out)


def test_version_reports_the_backend_the_environment_forces():
    assert version({"SHOAL_BACKEND": "epoll"})[3] == "event loop backend: epoll (chosen by SHOAL_BACKEND=epoll)"


def test_version_names_direct_descriptors_only_when_the_switch_turns_them_on():
    # FIXED_FILES: accepted sockets are named by an index into the ring's registered file table,
    # off by default; SHOAL_URING_DIRECT=on asks for it (docs/io_uring.md).
    default = version()[3]
    if not default.startswith("event loop backend: io_uring"):
        pytest.skip("this host runs the epoll backend")
    assert "FIXED_FILES" not in default, default
    on = version({"SHOAL_URING_DIRECT": "on"})[3]
    assert on == default.replace(")", "|FIXED_FILES)"), (default, on)


def test_version_names_receive_bundles_and_the_switch_that_turns_them_off():
    # RECV_BUNDLE: one receive completion may fill several buffers (Linux 6.10).
    # SHOAL_URING_BUNDLE=off keeps one buffer per completion (docs/io_uring.md).
    default = version()[3]
    if "RECV_BUNDLE" not in default:
        pytest.skip("this host's kernel or backend offers no receive bundles")
    off = version({"SHOAL_URING_BUNDLE": "off"})[3]
    assert off == default.replace("|RECV_BUNDLE", ""), (default, off)


def test_version_names_the_batched_wait_and_what_makes_it_batch():
    # After busy turns, a wait that would sleep anyway waits for a batch of completions with
    # io_uring's minimum wait (Linux 6.12). By default only connect storms make the loop busy
    # (ACCEPT_BATCH_WAIT); SHOAL_URING_BATCH_WAIT=on counts every arrival (BATCH_WAIT), off turns
    # it off (docs/io_uring.md).
    default = version()[3]
    if not default.startswith("event loop backend: io_uring"):
        pytest.skip("this host runs the epoll backend")
    off = version({"SHOAL_URING_BATCH_WAIT": "off"})[3]
    assert "BATCH_WAIT" not in off, off
    if default == off:
        pytest.skip("this host's kernel offers no minimum wait (IORING_FEAT_MIN_TIMEOUT)")
    assert default == off.replace(")", "|ACCEPT_BATCH_WAIT)"), (default, off)
    assert version({"SHOAL_URING_BATCH_WAIT": "accepts"})[3] == default
    on = version({"SHOAL_URING_BATCH_WAIT": "on"})[3]
    assert on == off.replace(")", "|BATCH_WAIT)"), (off, on)
    assert version({"SHOAL_URING_BATCH_WAIT": "4,64,100"})[3] == on
    # The cooperative set-up has no flag for pending completion work: a wait cannot be known to sleep.
    assert "BATCH_WAIT" not in version({"SHOAL_URING_TASKRUN": "coop"})[3]
    assert "BATCH_WAIT" not in version({"SHOAL_URING_BATCH_WAIT": "on", "SHOAL_URING_TASKRUN": "coop"})[3]
