#!/usr/bin/python3
"""What the HTTP gateway's fan-out costs zpubd: server CPU per delivered event.

usage: scripts/gateway-fanout-cost.py [CLIENTS] [MESSAGES] [RATE] [sse|ws] [zpubd|pushpin] [DELAY]
       (after `make release`)

Starts .build/release/zpubd with the gateway on a free port, opens CLIENTS Server-Sent Events
streams or WebSocket connections (raw sockets, one reader thread with selectors, so the client
costs little), publishes MESSAGES messages of 64 B at RATE per second through a PUSH socket,
reads until every client has every message, and prints zpubd's CPU time (all threads, from
/proc schedstat) per delivered message over the publishing window. Defaults: 500 clients, 2,000
messages, 200 per second, SSE (the issue's scenario). `make bench-gateway` runs 100, 500 and
1,000 clients of each kind, and Pushpin beside zpubd where it is installed.

DELAY sets zpubd's `[http] write_delay_ms` (default 0). The latency printed is that of one
client's events (publish to receipt, the send time travels in the payload): a write delay
trades it for CPU, and Pushpin's handler batches its deliveries every 25 ms.

`pushpin` as the fifth argument measures Pushpin (Debian's `pushpin`, 1.36) the same way, SSE
only: its runner with condure, pushpin-proxy and pushpin-handler in a temporary directory on
free ports, the clients on its built-in `test` route (a stream held on channel "test", so no
origin server and no zurl are involved), and the messages published through its ZeroMQ SUB
input as the same SSE event zpubd would send (same id, data and size). Its CPU is that of all
its processes. Its publish shaper is turned off (`message_rate=0`, `message_hwm=0`): the
default (2,500 deliveries a second, 25,000 queued) drops most of this run's deliveries, and any
rate of 40 or more restarts the shaper's 25 ms timer on every publish, so that nothing is
delivered while messages keep coming faster than one per 25 ms (docs/performance.md).

ZPUB_WRAP="perf record -g -o /tmp/perf.data --" runs zpubd under a profiler.
"""
import json
import os
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import zmq

from measure_common import cpu_ns, free_port

clients = int(sys.argv[1]) if len(sys.argv) > 1 else 500
messages = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
rate = float(sys.argv[3]) if len(sys.argv) > 3 else 200.0
kind = sys.argv[4] if len(sys.argv) > 4 else "sse"
server = sys.argv[5] if len(sys.argv) > 5 else "zpubd"
write_delay = int(sys.argv[6]) if len(sys.argv) > 6 else 0
if kind not in ("sse", "ws"):
    sys.exit("the kind is sse or ws")
if server not in ("zpubd", "pushpin"):
    sys.exit("the server is zpubd or pushpin")
if server == "pushpin" and kind != "sse":
    sys.exit("Pushpin is measured with SSE only (its WebSocket needs an origin server)")
here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


work = tempfile.mkdtemp(prefix="zpub-sse-cost-")
http = free_port()
if server == "zpubd":
    pull, control = f"ipc://{work}/pull", f"ipc://{work}/control"
    config = os.path.join(work, "zpubd.conf")
    with open(config, "w") as f:
        f.write(f'[daemon]\nlog_level = "warning"\n[http]\nenabled = true\nlisten = "127.0.0.1:{http}"\n'
                f"max_clients = {clients + 100}\nclient_queue = 10000\nwrite_delay_ms = {write_delay}\n")
    broker = subprocess.Popen(os.environ.get("ZPUB_WRAP", "").split() + [os.path.join(here, ".build/release/zpubd"), "--config", config, "--pull", pull,
                               "--control", control, "--xsub", f"ipc://{work}/xsub", "--xpub", f"ipc://{work}/xpub"])
else:
    sub_input, pull_input, http_input, command = free_port(), free_port(), free_port(), free_port()
    pull = f"tcp://127.0.0.1:{sub_input}"
    for folder in ("run", "log"):
        os.mkdir(os.path.join(work, folder))
    with open(os.path.join(work, "routes"), "w") as f:
        f.write("* test\n")
    config = os.path.join(work, "pushpin.conf")
    with open(config, "w") as f:
        f.write(f"""[global]
include={{libdir}}/internal.conf
rundir={work}/run
ipc_prefix=bench-
port_offset=0
stats_connection_ttl=120
[runner]
services=condure,pushpin-proxy,pushpin-handler
http_port=127.0.0.1:{http}
logdir={work}/log
log_level=1
client_buffer_size=8192
client_maxconn=50000
condure_bin=condure
zurl_bin=zurl
[proxy]
routesfile=routes
sig_iss=pushpin
sig_key=changeme
updates_check=off
[handler]
push_in_spec=tcp://127.0.0.1:{pull_input}
push_in_sub_specs=tcp://127.0.0.1:{sub_input}
push_in_sub_connect=false
push_in_http_addr=127.0.0.1
push_in_http_port={http_input}
stats_spec=ipc://{{rundir}}/{{ipc_prefix}}stats
command_spec=tcp://127.0.0.1:{command}
message_rate=0
message_hwm=0
message_wait=5000
id_cache_ttl=60
connection_subscription_max=20
subscription_linger=60
stats_format=tnetstring
""")
    broker = subprocess.Popen(["pushpin", "--config", config, "-m"], stdout=open(os.path.join(work, "pushpin.log"), "w"), stderr=subprocess.STDOUT)
try:
    deadline = time.time() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", http), 1).close()
            break
        except OSError:
            if time.time() > deadline:
                sys.exit(f"{server}'s HTTP port did not open")
            time.sleep(0.1)

    selector = selectors.DefaultSelector()
    streams = {}
    def open_stream():
        s = socket.create_connection(("127.0.0.1", http))
        if server == "pushpin":
            s.sendall(b"GET /stream HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
        elif kind == "sse":
            s.sendall(b"GET /events?prefix=fan. HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
        else:
            s.sendall(b"GET /ws?prefix=fan. HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        s.setblocking(False)
        selector.register(s, selectors.EVENT_READ)
        streams[s] = {"buffer": b"", "events": 0, "ready": False, "bytes": 0, "opened": time.time()}

    for index in range(clients):
        if index % 50 == 49 or (server == "pushpin" and index % 10 == 9):
            # Within the listen backlog. Pushpin cancels some of a burst of 50 streams while it
            # hands them from its proxy to its handler ("received message out of sequence").
            time.sleep(0.05)
        open_stream()
    reopened = 0
    latencies, measuring, sample = [], False, None

    def read(timeout):
        for key, _ in selector.select(timeout):
            s = key.fileobj
            state = streams[s]
            data = s.recv(65536)
            if not data:
                sys.exit(f"a stream closed after {state['bytes']} bytes, {state['events']} events; {work}")
            state["buffer"] += data
            state["bytes"] += len(data)
            if s is sample and measuring:
                received = time.time()
                for part in data.split(b'"payload":"')[1:]:
                    try:
                        latencies.append(received - float(part[:17]))
                    except ValueError:
                        pass  # cut between two reads, or a probe
            if not state["ready"] and b"\r\n\r\n" in state["buffer"]:
                state["ready"] = True
                state["buffer"] = state["buffer"].split(b"\r\n\r\n", 1)[1]
            if kind == "sse":
                # Messages only: not the stream's `subscribed` event.
                state["events"] += (state["buffer"].count(b'\ndata: {"type":"message"')
                                    + state["buffer"].startswith(b'data: {"type":"message"'))
                state["buffer"] = state["buffer"][state["buffer"].rfind(b"\n") + 1:]
            else:
                state["events"] += count_frames(state)

    def count_frames(state):
        """Whole text and binary frames in the buffer (the server's frames are not masked), but
        not the `subscribed` that confirms the URL's prefix."""
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
            notice = buffer[at + header:at + header + length].startswith(b'{"type":"subscribed"')
            frames += opcode == 2 or (opcode == 1 and not notice)
            at += header + length
        state["buffer"] = buffer[at:]
        return frames

    context = zmq.Context()
    push = context.socket(zmq.PUSH if server == "zpubd" else zmq.PUB)
    push.connect(pull)
    number = 0

    def publish(topic, payload):
        """zpubd gets the message; Pushpin gets the SSE event zpubd would make of it."""
        global number
        if server == "zpubd":
            push.send_multipart([topic, payload])
            return
        number += 1
        data = json.dumps({"type": "message", "topic": topic.decode(), "encoding": "text", "payload": payload.decode()},
                          separators=(",", ":"))
        event = f"id: 0-{number}\ndata: {data}\n\n"
        item = {"channel": "test", "formats": {"http-stream": {"content": event}}}
        push.send_multipart([b"test", b"J" + json.dumps(item).encode()])
    # Every stream is open and subscribed once a probe reaches all of them.
    deadline = time.time() + 30
    while not all(state["ready"] and state["events"] > 0 for state in streams.values()):
        if time.time() > deadline:
            stuck = [state for state in streams.values() if not (state["ready"] and state["events"] > 0)]
            sys.exit(f"{len(stuck)} streams did not get the probe; one has: {stuck[0]['buffer'][:300]!r}")
        publish(b"fan.probe", b"?")
        read(0.05)
        if server == "pushpin":
            # Pushpin's connection manager leaves a few of 500 requests unanswered (they never
            # reach its proxy); such a stream is replaced, and the count is reported.
            for s, state in list(streams.items()):
                if not state["ready"] and time.time() - state["opened"] > 5:
                    selector.unregister(s)
                    s.close()
                    del streams[s]
                    open_stream()
                    reopened += 1
    for state in streams.values():
        state["events"] = 0
        state["bytes"] = 0
    sample, measuring = next(iter(streams)), True
    before = cpu_ns(broker.pid, children=True)
    started = time.time()
    for i in range(messages):
        due = started + i / rate
        while time.time() < due:
            read(max(0.0, due - time.time()))
        publish(b"fan.data", f"{time.time():17.6f}".encode().ljust(64, b"x"))
    deadline = time.time() + 30
    while min(state["events"] for state in streams.values()) < messages and time.time() < deadline:
        read(0.05)
    after = cpu_ns(broker.pid, children=True)
    delivered = sum(min(state["events"], messages) for state in streams.values())
    wire = sum(state["bytes"] for state in streams.values()) / max(1, delivered)
    latencies.sort()
    latency = (f", latency p50 {latencies[len(latencies) // 2] * 1e3:.1f} ms p99 {latencies[len(latencies) * 99 // 100] * 1e3:.1f} ms"
               if latencies else "")
    print(f"{server}{f' write_delay_ms={write_delay}' if write_delay else ''}: {clients} {'SSE' if kind == 'sse' else 'WebSocket'} clients, {messages} messages of 64 B at {rate:.0f}/s: {delivered} events delivered "
          f"({100.0 * delivered / (clients * messages):.1f}%), {server} CPU {(after - before) / 1e9:.2f} s, "
          f"{(after - before) / 1e3 / max(1, delivered):.2f} µs per event ({wire:.0f} bytes each on the wire){latency}"
          + (f"; {reopened} streams left unanswered at setup were reopened" if reopened else ""))
finally:
    broker.terminate()
    broker.wait()
    shutil.rmtree(work, ignore_errors=True)
