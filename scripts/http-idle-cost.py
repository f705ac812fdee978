#!/usr/bin/env python3
"""Measures what idle HTTP gateway clients cost zpubd: resident memory and CPU time.

usage: scripts/http-idle-cost.py PID PORT [COUNT] [IDLE_SECONDS]

Opens COUNT WebSocket connections (each subscribed to its own prefix, so the broker sees COUNT
subscriptions) and then COUNT SSE streams to the zpubd with process id PID and HTTP port PORT,
and prints zpubd's resident memory (VmRSS) and CPU time before, after each batch, and after
IDLE_SECONDS of idleness. Raw sockets, so that the client costs little. See docs/http.md.
"""
import base64
import os
import resource
import socket
import sys
import time

from measure_common import memory_kib, user_system_s


def connect(port, request):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(request.encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            raise RuntimeError("closed: " + data.decode(errors="replace"))
        data += chunk
    status = data.split(b" ", 2)[1]
    if status not in (b"101", b"200"):
        raise RuntimeError(data.decode(errors="replace"))
    return s


def main():
    pid, port = int(sys.argv[1]), int(sys.argv[2])
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 5000
    idle = float(sys.argv[4]) if len(sys.argv) > 4 else 30
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    report = []

    def sample(label, n):
        report.append((label, n, sum(memory_kib(pid)), sum(user_system_s(pid))))

    sample("start", 0)
    sockets = []
    for i in range(count):
        key = base64.b64encode(os.urandom(16)).decode()
        sockets.append(connect(port, (
            f"GET /ws?prefix=idle.ws.{i}. HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")))
    time.sleep(2)
    sample("websocket", count)
    for i in range(count):
        sockets.append(connect(port, (
            f"GET /events?prefix=idle.sse.{i}. HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Accept: text/event-stream\r\n\r\n")))
    time.sleep(2)
    sample("websocket+sse", 2 * count)
    time.sleep(idle)
    sample(f"after {idle:.0f} s idle", 2 * count)
    for s in sockets:
        s.close()
    time.sleep(2)
    sample("closed", 0)
    base = report[0]
    print(f"{'state':<22}{'clients':>8}{'RSS MiB':>10}{'KiB/client':>12}{'CPU s':>8}")
    for label, n, rss, cpu in report:
        per = (rss - base[2]) / n if n else 0
        print(f"{label:<22}{n:>8}{rss / 1024:>10.1f}{per:>12.1f}{cpu - base[3]:>8.2f}")


if __name__ == "__main__":
    main()
