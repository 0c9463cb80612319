#!/usr/bin/env python3
"""Autobahn|Testsuite's fuzzing client over wss://, through the rig beside the checkout.

    $AB_VENV/bin/python scripts/autobahn-wss.py RIG_DIR ws://127.0.0.1:PORT [abrun.py options]

The rig's driver (RIG_DIR/abrun.py) accepts ws:// URLs only, but the suite's own client speaks
TLS: `FuzzingClientFactory` takes the scheme from the URL it is given and, for wss://, connects
with Twisted's TLS client context (no certificate check, as wstest does without "hostname").
This wrapper runs abrun.py unchanged and hands the factory the same URL as wss://, so every case,
verdict and summary line is the rig's own. Needs pyOpenSSL and service_identity in the rig's
venv (scripts/install-deps.sh installs them there).
"""
import os
import runpy
import sys

if len(sys.argv) < 3 or not sys.argv[2].startswith("ws://"):
    print(__doc__, file=sys.stderr)
    sys.exit(2)
rig = sys.argv[1]
sys.path.insert(0, rig)
sys.argv = [os.path.join(rig, "abrun.py")] + sys.argv[2:]

import txaio  # noqa: E402  (the rig selects Twisted before the suite is imported)

txaio.use_twisted()
from autobahntestsuite import fuzzing  # noqa: E402

plain = fuzzing.FuzzingClientFactory.setSessionParameters


def over_tls(self, url=None, *args, **kwargs):
    return plain(self, url.replace("ws://", "wss://", 1) if url else url, *args, **kwargs)


fuzzing.FuzzingClientFactory.setSessionParameters = over_tls
print("autobahn-wss: the fuzzing client connects with wss:// (TLS)", flush=True)
runpy.run_path(sys.argv[0], run_name="__main__")
