#!/usr/bin/python3
"""Whether zpubd's memory stays flat over a long run with every table churning.

Runs the release zpubd (after `make release`) with history on disk (small bounds, so that it
evicts all the time), the last-value cache, topic accounting at its topic limit, the HTTP
gateway, and for DURATION seconds feeds it:
  - a producer: kept, cached and plain messages, plain ones on ever new topics (the topic
    table evicts at `max_topics`), payloads of 16-2,048 bytes;
  - subscribers that come and go every second, each with 20 new prefixes;
  - SSE clients of the gateway that come and go, half of them resuming with Last-Event-ID;
  - an admin: STATS, TOPICS, HISTORY and SNAPSHOT requests.
Every 10 s it prints zpubd's resident memory (VmRSS, split into anonymous and file-backed), its
history on disk and what the tables hold. At the end: the growth of anonymous memory from the
end of the warm-up (the first quarter) to the end, as the means of the second and the last
quarter, and a verdict against a bound of 10%.

Usage: scripts/memory-soak.py [DURATION_S] [RATE_PER_S]   (defaults 600 and 20000)
"""
import argparse
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time

import zmq

from measure_common import free_port, memory_kib

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.path.join(HERE, "..", ".build", "release")
_arguments = argparse.ArgumentParser(
    description="zpubd's memory over a long run with every table churning (see the top of this file).")
_arguments.add_argument("duration", nargs="?", type=int, default=600, help="seconds to run (at least 80)")
_arguments.add_argument("rate", nargs="?", type=int, default=20000, help="messages a second")
_parsed = _arguments.parse_args()
DURATION, RATE = _parsed.duration, _parsed.rate
BOUND = 0.10
# The history writer's queue, a ring that becomes resident as traffic passes through it.
QUEUE_BYTES = int(os.environ.get("SOAK_QUEUE_BYTES", 67108864))




def main():
    if not os.access(os.path.join(BIN, "zpubd"), os.X_OK):
        sys.exit(f"no release zpubd in {os.path.normpath(BIN)}: run `make release` first (or `make soak-memory`)")
    work = tempfile.mkdtemp(prefix="zpub-soak-")
    ports = {name: free_port() for name in ("pull", "xsub", "xpub", "control", "http")}
    config = os.path.join(work, "zpubd.conf")
    with open(config, "w") as out:
        out.write(f"""
[limits]
max_topics = 2000
[last_value]
prefixes = ["lv."]
max_entries = 1000
[history]
prefixes = ["h."]
directory = "{work}/state"
max_messages = 50000
max_bytes = 8388608
sync_interval_ms = 1000
queue_bytes = {QUEUE_BYTES}
[http]
enabled = true
listen = "127.0.0.1:{ports['http']}"
""")
    endpoint = lambda name: f"tcp://127.0.0.1:{ports[name]}"
    daemon = subprocess.Popen(
        [os.path.join(BIN, "zpubd"), "--config", config, "--pull", endpoint("pull"), "--xsub", endpoint("xsub"),
         "--xpub", endpoint("xpub"), "--control", endpoint("control"), "--log-level", "warning"])
    context = zmq.Context()
    stop = threading.Event()
    errors = []
    slowest = {}

    def control(request):
        client = context.socket(zmq.REQ)
        client.setsockopt(zmq.LINGER, 0)
        client.setsockopt(zmq.RCVTIMEO, 5000)
        client.connect(endpoint("control"))
        try:
            client.send_string(request)
            return json.loads(client.recv())
        finally:
            client.close()

    deadline = time.time() + 15
    while True:
        try:
            control("PING")
            break
        except Exception:
            if time.time() > deadline or daemon.poll() is not None:
                sys.exit("zpubd did not start")
            time.sleep(0.2)

    def guarded(body):
        def run():
            try:
                body()
            except Exception as error:  # a failing load is a failed soak, not a quiet one
                errors.append(f"{body.__name__}: {error!r}")
                stop.set()
        return threading.Thread(target=run, daemon=True)

    def producer():
        push = context.socket(zmq.PUSH)
        push.setsockopt(zmq.SNDHWM, 10000)
        push.connect(endpoint("pull"))
        payloads = [os.urandom(size) for size in (16, 64, 256, 1024, 2048)]
        fresh = 0
        sent = 0
        started = time.time()
        while not stop.is_set():
            for _ in range(100):
                kind = sent % 10
                if kind < 3:
                    topic = f"h.{sent % 500}"
                elif kind < 5:
                    topic = f"lv.{sent % 7919}"
                else:
                    fresh += 1
                    topic = f"t.{fresh}"
                push.send_multipart([topic.encode(), payloads[sent % len(payloads)]])
                sent += 1
            ahead = sent / RATE - (time.time() - started)
            if ahead > 0:
                time.sleep(ahead)
        push.close(linger=0)

    def subscribers():
        while not stop.is_set():
            sub = context.socket(zmq.SUB)
            sub.setsockopt(zmq.LINGER, 0)
            sub.connect(endpoint("xpub"))
            for _ in range(20):
                sub.setsockopt(zmq.SUBSCRIBE, f"t.{random.randrange(1 << 30)}".encode())
            sub.setsockopt(zmq.SUBSCRIBE, b"h.1")
            until = time.time() + 1
            while time.time() < until and not stop.is_set():
                if sub.poll(100):
                    sub.recv_multipart()
            sub.close()

    def sse_clients():
        last_id = None
        while not stop.is_set():
            connection = socket.create_connection(("127.0.0.1", ports["http"]), timeout=5)
            headers = f"Last-Event-ID: {last_id}\r\n" if last_id and random.random() < 0.5 else ""
            connection.sendall(
                f"GET /events?prefix=h.&prefix=lv.1 HTTP/1.1\r\nHost: soak\r\nAccept: text/event-stream\r\n{headers}\r\n"
                .encode())
            data = b""
            until = time.time() + 0.5
            while time.time() < until:
                try:
                    chunk = connection.recv(65536)
                except socket.timeout:
                    break
                if not chunk:
                    break
                data += chunk
            for line in data.split(b"\n"):
                if line.startswith(b"id: "):
                    last_id = line[4:].decode().strip()
            connection.close()

    def admin():
        while not stop.is_set():
            # A snapshot is a handshake: the marker subscription first, on a SUB of its own.
            token = f"soak{random.randrange(1 << 30)}"
            snapshot = context.socket(zmq.SUB)
            snapshot.setsockopt(zmq.LINGER, 0)
            snapshot.connect(endpoint("xpub"))
            snapshot.setsockopt(zmq.SUBSCRIBE, b"lv.")
            snapshot.setsockopt(zmq.SUBSCRIBE, f"$zpub/snapshot/{token}".encode())
            for request in ("STATS", "TOPICS", "HISTORY last 100", f"SNAPSHOT {token} lv."):
                asked = time.time()
                try:
                    reply = control(request)
                except zmq.Again:
                    raise RuntimeError(f"{request}: no reply within 5 s") from None
                name = request.split()[0] if request.startswith("SNAPSHOT") else request
                slowest[name] = max(slowest.get(name, 0), time.time() - asked)
                if "error" in reply:
                    raise RuntimeError(f"{request}: {reply['error']}")
            snapshot.close()
            time.sleep(0.5)

    threads = [guarded(body) for body in (producer, subscribers, sse_clients, admin)]
    for thread in threads:
        thread.start()
    samples = []
    started = time.time()
    print("| t (s) | RSS anon (MiB) | RSS file (MiB) | history queue resident (MiB) | history on disk (MiB) | kept | topics | last values | subscriptions | messages in |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    while time.time() - started < DURATION and not stop.is_set():
        time.sleep(10)
        if daemon.poll() is not None:
            errors.append(f"zpubd exited with {daemon.returncode}")
            break
        anon, file_backed = memory_kib(daemon.pid)
        stats = control("STATS")
        history = stats.get("history", {})
        samples.append((time.time() - started, anon))
        print(f"| {time.time() - started:.0f} | {anon / 1024:.1f} | {file_backed / 1024:.1f} | "
              f"{history.get('queue_resident_bytes', 0) / 1048576:.1f} | "
              f"{history.get('disk_bytes', 0) / 1048576:.1f} | {history.get('messages', 0)} | "
              f"{stats.get('topics', {}).get('tracked', '?')} | {stats.get('last_value', {}).get('entries', '?')} | "
              f"{stats.get('subscriptions', {}).get('total', '?')} | {stats.get('messages_in', '?')} |", flush=True)
    stop.set()
    for thread in threads:
        thread.join(10)
    daemon.terminate()
    daemon.wait(30)
    subprocess.run(["rm", "-rf", work])
    print("slowest control replies: " + ", ".join(f"{name} {seconds * 1000:.0f} ms" for name, seconds in slowest.items()))
    if errors:
        sys.exit("soak failed: " + "; ".join(errors))
    # Means over a quarter of the run each, the one after the warm-up and the last: single
    # samples move by some 2-3 MiB with what the clients are doing at that moment (a 2026-12-02
    # run read 13.3 MiB at one and 16.5 at the next, +24%, around means of 15.3 and 15.7).
    first = [anon for t, anon in samples if DURATION / 4 <= t < DURATION / 2]
    last = [anon for t, anon in samples if t >= DURATION * 3 / 4]
    if not first or not last:
        sys.exit("too short to judge (run at least 80 s)")
    start, end = sum(first) / len(first), sum(last) / len(last)
    growth = (end - start) / start
    verdict = "flat" if growth <= BOUND else "GROWING"
    print(f"anonymous memory, mean of the second quarter {start / 1024:.1f} MiB, of the last {end / 1024:.1f} MiB "
          f"(samples {min(a for t, a in samples if t >= DURATION / 4) / 1024:.1f}-{max(a for t, a in samples if t >= DURATION / 4) / 1024:.1f}): "
          f"{growth * 100:+.1f}% ({verdict}; bound {BOUND * 100:.0f}%)")
    sys.exit(0 if growth <= BOUND else 1)


main()
