#!/usr/bin/env python3
"""An ssh ProxyCommand that adds latency: relays stdin/stdout to HOST:PORT, each chunk delayed ONE_WAY_MS.

This machine has no `tc netem`, so WAN latency is simulated here. Chunks keep their order and are
pipelined (each is held for the delay from when it arrived, not after the previous one was sent).

    ProxyCommand python3 bench/delay_relay.py 127.0.0.1 2222 25     # 50 ms round trip
    ProxyCommand python3 bench/delay_relay.py 127.0.0.1 2222 0 /tmp/bytes   # no delay; count the bytes

With a fourth argument, the bytes relayed each way are appended to that file as "up DOWN" when the
connection ends: what one ssh connection cost on the wire, handshake included.
"""

from __future__ import annotations

import os
import queue
import signal
import socket
import sys
import threading
import time


def pump(read, write, delay: float, counted: list[int] | None = None) -> None:
    pending: queue.Queue[tuple[float, bytes]] = queue.Queue()

    def reader() -> None:
        while chunk := read(65536):
            if counted is not None:
                counted[0] += len(chunk)
            pending.put((time.monotonic() + delay, chunk))
        pending.put((time.monotonic() + delay, b""))

    threading.Thread(target=reader, daemon=True).start()
    while True:
        due, chunk = pending.get()
        wait = due - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        if not chunk:
            return
        write(chunk)


def main() -> None:
    host, port, one_way_ms = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    if not host.startswith("127."):
        sys.exit("delay_relay: loopback addresses only")
    delay = one_way_ms / 1000
    sock = socket.create_connection((host, port))

    def to_stdout(data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(1, view):]

    sent, received = [0], [0]
    if len(sys.argv) > 4:
        # ssh ends its ProxyCommand with SIGHUP when the connection closes: count on the way out
        def record(*_: object) -> None:
            with open(sys.argv[4], "a") as out:
                out.write(f"{sent[0]} {received[0]}\n")
            os._exit(0)

        for sig in (signal.SIGHUP, signal.SIGTERM):
            signal.signal(sig, record)
    up = threading.Thread(target=pump, args=(lambda n: os.read(0, n), sock.sendall, delay, sent), daemon=True)
    up.start()
    pump(sock.recv, to_stdout, delay, received)
    sock.close()
    if len(sys.argv) > 4:
        record()


if __name__ == "__main__":
    main()
