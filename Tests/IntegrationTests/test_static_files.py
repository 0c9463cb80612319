"""Static files from --public: one copy per file whatever the spelling of its path, memory
bounded in bytes, and nothing outside the folder or hidden (docs/security.md)."""

import os

from cluster_helpers import rss_bytes, wait_workers
from helpers import http_get

MIB = 1024 * 1024


def public_folder(tmp_path):
    """A public folder with a 1 MiB file, a hidden file, a sub-folder, and symlinks in and out."""
    pub = tmp_path / "pub"
    (pub / "sub").mkdir(parents=True)
    big = os.urandom(MIB)
    (pub / "big.bin").write_bytes(big)
    (pub / "index.html").write_text("<html><body>root page</body></html>")
    (pub / "sub" / "index.html").write_text("<html><body>sub page</body></html>")
    (pub / ".secret").write_text("hidden\n")
    (tmp_path / "outside.txt").write_text("outside the root\n")
    os.symlink(tmp_path / "outside.txt", pub / "escape.txt")
    os.symlink(pub / ".secret", pub / "visible-alias.txt")
    os.symlink("big.bin", pub / "alias.bin")
    return pub, big


def test_every_spelling_of_a_path_shares_one_copy(shoal, tmp_path):
    pub, big = public_folder(tmp_path)
    srv = shoal("--handler", "echo", "--path", "/ws", "--workers", "1", "--public", str(pub))
    worker = wait_workers(srv.proc.pid, [0])[0]
    for _ in range(3):  # the first responses grow the worker's buffers once
        r = http_get(srv.port, "/big.bin")
        assert r.status == 200 and r.body == big, r.status
    before = rss_bytes(worker)
    for path in ["/" * k + "big.bin" for k in range(1, 301)]:
        r = http_get(srv.port, path)
        assert r.status == 200 and r.body == big, (path, r.status, len(r.body))
    grown = rss_bytes(worker) - before
    # The old per-path cache kept a 1 MiB copy per spelling: 300 MiB here.
    assert grown < 2 * MIB, f"worker RSS grew by {grown / MIB:.1f} MiB over 300 spellings of one 1 MiB file"
    for path in ["/./big.bin", "/.//./big.bin", "//././/big.bin", "/alias.bin", "//alias.bin"]:
        r = http_get(srv.port, path)
        assert r.status == 200 and r.body == big, (path, r.status, len(r.body))
        assert r.header("Content-Type") == "application/octet-stream", (path, r)
    grown = rss_bytes(worker) - before
    assert grown < 2 * MIB, f"worker RSS grew by {grown / MIB:.1f} MiB with the other spellings and the symlink"

def test_folders_index_and_refusals(shoal, tmp_path):
    pub, _ = public_folder(tmp_path)
    srv = shoal("--handler", "echo", "--path", "/ws", "--workers", "1", "--public", str(pub))
    assert b"root page" in http_get(srv.port, "/").body
    assert b"sub page" in http_get(srv.port, "/sub/").body
    assert b"sub page" in http_get(srv.port, "//sub//index.html").body
    for path in ("/.secret", "/sub/../.secret", "/visible-alias.txt", "/escape.txt", "/../outside.txt",
                 "/%2e%2e/outside.txt", "/sub/%2e%2e/%2e%2e/outside.txt", "/sub", "/missing"):
        r = http_get(srv.port, path)
        assert r.status == 404, (path, r.status, r.body[:80])
        assert b"hidden" not in r.body and b"outside the root" not in r.body, (path, r.body[:80])


def test_files_beyond_the_byte_limit_are_not_served(shoal, tmp_path):
    """9 MiB is above the 8 MiB per-file limit: 404, and the worker does not read it."""
    pub = tmp_path / "pub"
    pub.mkdir()
    (pub / "huge.bin").write_bytes(b"\0" * (9 * MIB))
    (pub / "small.txt").write_text("small\n")
    srv = shoal("--handler", "echo", "--path", "/ws", "--workers", "1", "--public", str(pub))
    assert http_get(srv.port, "/small.txt").body == b"small\n"
    assert http_get(srv.port, "/huge.bin").status == 404
    assert "not served (above the per-file limit): huge.bin" in srv.log()
