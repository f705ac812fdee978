#!/usr/bin/python3
"""What the HTTP gateway's fan-out costs zpubd: server CPU per delivered event.

usage: scripts/gateway-fanout-cost.py [CLIENTS] [MESSAGES] [RATE] [sse|ws]   (after `make release`)

Starts .build/release/zpubd with the gateway on a free port, opens CLIENTS Server-Sent Events
streams or WebSocket connections (raw sockets, one reader thread with selectors, so the client
costs little), publishes MESSAGES messages of 64 B at RATE per second through a PUSH socket,
reads until every client has every message, and prints zpubd's CPU time (all threads, from
/proc schedstat) per delivered message over the publishing window. Defaults: 500 clients, 2,000
messages, 200 per second, SSE (the issue's scenario, in which Pushpin 1.36 was measured at
3.6 µs per event). `make bench-gateway` runs 100 and 1,000 clients of each kind.

ZPUB_WRAP="perf record -g -o /tmp/perf.data --" runs zpubd under a profiler.
"""
import os
import selectors
import socket
import subprocess
import sys
import tempfile
import time

import zmq

clients = int(sys.argv[1]) if len(sys.argv) > 1 else 500
messages = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
rate = float(sys.argv[3]) if len(sys.argv) > 3 else 200.0
kind = sys.argv[4] if len(sys.argv) > 4 else "sse"
if kind not in ("sse", "ws"):
    sys.exit("the kind is sse or ws")
here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_ns(pid):
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            total += int(open(f"/proc/{pid}/task/{task}/schedstat").read().split()[0])
        except (OSError, ValueError):
            pass
    return total


work = tempfile.mkdtemp(prefix="zpub-sse-cost-")
http, pull, control = free_port(), f"ipc://{work}/pull", f"ipc://{work}/control"
config = os.path.join(work, "zpubd.conf")
with open(config, "w") as f:
    f.write(f'[daemon]\nlog_level = "warning"\n[http]\nenabled = true\nlisten = "127.0.0.1:{http}"\n'
            f"max_clients = {clients + 100}\nclient_queue = 10000\n")
broker = subprocess.Popen(os.environ.get("ZPUB_WRAP", "").split() + [os.path.join(here, ".build/release/zpubd"), "--config", config, "--pull", pull,
                           "--control", control, "--xsub", f"ipc://{work}/xsub", "--xpub", f"ipc://{work}/xpub"])
try:
    deadline = time.time() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", http), 1).close()
            break
        except OSError:
            if time.time() > deadline:
                sys.exit("zpubd's gateway did not start")
            time.sleep(0.1)

    selector = selectors.DefaultSelector()
    streams = {}
    for index in range(clients):
        if index % 50 == 49:
            time.sleep(0.05)  # within the listen backlog
        s = socket.create_connection(("127.0.0.1", http))
        if kind == "sse":
            s.sendall(b"GET /events?prefix=fan. HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
        else:
            s.sendall(b"GET /ws?prefix=fan. HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        s.setblocking(False)
        selector.register(s, selectors.EVENT_READ)
        streams[s] = {"buffer": b"", "events": 0, "ready": False}

    def read(timeout):
        for key, _ in selector.select(timeout):
            s = key.fileobj
            state = streams[s]
            data = s.recv(65536)
            if not data:
                sys.exit("a stream closed")
            state["buffer"] += data
            if not state["ready"] and b"\r\n\r\n" in state["buffer"]:
                state["ready"] = True
                state["buffer"] = state["buffer"].split(b"\r\n\r\n", 1)[1]
            if kind == "sse":
                state["events"] += state["buffer"].count(b"\ndata: ") + state["buffer"].startswith(b"data: ")
                state["buffer"] = state["buffer"][state["buffer"].rfind(b"\n") + 1:]
            else:
                state["events"] += count_frames(state)

    def count_frames(state):
        """Whole text and binary frames in the buffer (the server's frames are not masked)."""
        buffer, at, frames = state["buffer"], 0, 0
        while len(buffer) - at >= 2:
            opcode, length, header = buffer[at] & 0x0F, buffer[at + 1] & 0x7F, 2
            if length == 126:
                if len(buffer) - at < 4:
                    break
                length, header = int.from_bytes(buffer[at + 2:at + 4], "big"), 4
            elif length == 127:
                if len(buffer) - at < 10:
                    break
                length, header = int.from_bytes(buffer[at + 2:at + 10], "big"), 10
            if len(buffer) - at < header + length:
                break
            frames += opcode in (1, 2)
            at += header + length
        state["buffer"] = buffer[at:]
        return frames

    context = zmq.Context()
    push = context.socket(zmq.PUSH)
    push.connect(pull)
    # Every stream is open and subscribed once a probe reaches all of them.
    deadline = time.time() + 30
    while not all(state["ready"] and state["events"] > 0 for state in streams.values()):
        if time.time() > deadline:
            stuck = [state for state in streams.values() if not (state["ready"] and state["events"] > 0)]
            sys.exit(f"{len(stuck)} streams did not get the probe; one has: {stuck[0]['buffer'][:300]!r}")
        push.send_multipart([b"fan.probe", b"?"])
        read(0.05)
    for state in streams.values():
        state["events"] = 0
    payload = b"x" * 64
    before = cpu_ns(broker.pid)
    started = time.time()
    for i in range(messages):
        due = started + i / rate
        while time.time() < due:
            read(max(0.0, due - time.time()))
        push.send_multipart([b"fan.data", payload])
    deadline = time.time() + 30
    while min(state["events"] for state in streams.values()) < messages and time.time() < deadline:
        read(0.05)
    after = cpu_ns(broker.pid)
    delivered = sum(min(state["events"], messages) for state in streams.values())
    print(f"{clients} {'SSE' if kind == 'sse' else 'WebSocket'} clients, {messages} messages of 64 B at {rate:.0f}/s: {delivered} events delivered "
          f"({100.0 * delivered / (clients * messages):.1f}%), zpubd CPU {(after - before) / 1e9:.2f} s, "
          f"{(after - before) / 1e3 / max(1, delivered):.2f} µs per event")
finally:
    broker.terminate()
    broker.wait()
