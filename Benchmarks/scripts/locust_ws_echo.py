"""Locust virtual users for generators.py: each user holds one WebSocket (websocket-client,
cooperative under Locust's gevent) and sends a 16-byte text message, waits for its echo and
reports the round trip to Locust as one request named "echo".

--per-user-rate R (messages per second per user) paces with Locust's constant_throughput, which
is a closed model: a late echo delays the next send, it never sends more to catch up. 0 (the
default) sends the next message as soon as the echo came back.

Locust keeps response times in buckets (stats.bucket_response_time: whole milliseconds below
100 ms), which would make every sub-millisecond echo 0 or 1 ms; this file replaces the bucketing,
through the hook Locust documents for that, with two significant digits at every magnitude.
"""
import math
import time

import websocket
from locust import User, constant, constant_throughput, events, stats, task

MESSAGE = "abcdefghijklmnop"  # 16 bytes, as the other generators send


def two_significant_digits(milliseconds):
    if milliseconds <= 0:
        return 0
    return round(milliseconds, 1 - int(math.floor(math.log10(milliseconds))))


stats.bucket_response_time = two_significant_digits


@events.init_command_line_parser.add_listener
def _(parser):
    parser.add_argument("--per-user-rate", type=float, default=0.0,
                        help="messages per second per user (0: next message as soon as the echo came back)")


class EchoUser(User):
    def wait_time(self):
        rate = self.environment.parsed_options.per_user_rate
        return (constant_throughput(rate) if rate > 0 else constant(0))(self)

    def on_start(self):
        url = self.host.rstrip("/") + "/"
        self.socket = websocket.create_connection(url, enable_multithread=False)

    def on_stop(self):
        self.socket.close()

    @task
    def echo(self):
        start = time.perf_counter()
        exception = None
        try:
            self.socket.send(MESSAGE)
            reply = self.socket.recv()
            if reply != MESSAGE:
                exception = ValueError(f"echo differs: {reply!r}")
        except Exception as error:  # reported to Locust as a failure, as its own clients do
            exception = error
        self.environment.events.request.fire(
            request_type="WS", name="echo", response_time=(time.perf_counter() - start) * 1000,
            response_length=len(MESSAGE), exception=exception, context={})
