#!/usr/bin/python3
"""How long a flood of costly admin requests holds up a health check.

usage: scripts/control-flood.py [ZPUBD] [CLIENTS] [TOPICS]
       (defaults: .build/debug/zpubd, 800 clients, 10,000 topics)

Starts ZPUBD on ipc endpoints in a temporary directory, gives it TOPICS topics (one message
each), connects CLIENTS REQ sockets to its control socket, and has each ask TOPICS at once
(equal requests, each a reply of every topic), while a monitor in a process of its own (its
own libzmq I/O thread: the flood's replies, megabytes each, do not queue ahead of its reply)
asks HEALTH every 50 ms. Prints how long the flood took to be answered, how many answers were
errors (`unavailable`: the costly queue full), and the monitor's slowest HEALTH.

Measured on 2026-12-05 (debug build, 2-core VM, 800 clients, 10,000 topics): before the
costly-request queue (docs/control-protocol.md) HEALTH waited 61.8 s, as long as the flood;
after it, 87-220 ms, the building of one reply.
"""
import json
import os
import subprocess
import sys
import tempfile
import time

import zmq

MONITOR = r"""
import sys, time, zmq
context = zmq.Context()
monitor = context.socket(zmq.REQ)
monitor.connect(sys.argv[1])
end = time.time() + float(sys.argv[2])
worst, checks = 0.0, 0
while time.time() < end:
    start = time.time()
    monitor.send(b"HEALTH")
    monitor.recv()
    worst = max(worst, time.time() - start)
    checks += 1
    time.sleep(0.05)
print(f"HEALTH: slowest {worst * 1000:.0f} ms over {checks} checks", flush=True)
"""


def main():
    zpubd = sys.argv[1] if len(sys.argv) > 1 else ".build/debug/zpubd"
    clients = int(sys.argv[2]) if len(sys.argv) > 2 else 800
    topics = int(sys.argv[3]) if len(sys.argv) > 3 else 10_000
    directory = tempfile.mkdtemp(prefix="zpub-control-flood-")
    config = os.path.join(directory, "zpubd.conf")
    with open(config, "w") as file:
        file.write(f"[limits]\nmax_topics = {topics * 2}\n")

    def endpoint(name):
        return f"ipc://{directory}/{name}"

    daemon = subprocess.Popen(
        [zpubd, "--config", config, "--pull", endpoint("pull"), "--xsub", endpoint("xsub"),
         "--xpub", endpoint("xpub"), "--control", endpoint("control")],
        stderr=subprocess.DEVNULL)
    context = zmq.Context()
    try:
        admin = context.socket(zmq.REQ)
        admin.setsockopt(zmq.RCVTIMEO, 10_000)
        admin.connect(endpoint("control"))
        admin.send(b"PING")
        admin.recv()
        push = context.socket(zmq.PUSH)
        push.connect(endpoint("pull"))
        for number in range(topics):
            push.send_multipart([f"topic.{number}".encode(), b"x"])
        while True:
            admin.send(b"STATS")
            if json.loads(admin.recv())["topics"]["tracked"] >= topics:
                break
            time.sleep(0.1)
        flood = [context.socket(zmq.REQ) for _ in range(clients)]
        for socket in flood:
            socket.connect(endpoint("control"))
        time.sleep(0.5)  # the connections, before the flood
        monitor = subprocess.Popen([sys.executable, "-c", MONITOR, endpoint("control"), "8"])
        time.sleep(0.3)  # the monitor's first HEALTH, before the flood
        started = time.time()
        for socket in flood:
            socket.send(b"TOPICS")
        poller = zmq.Poller()
        for socket in flood:
            poller.register(socket, zmq.POLLIN)
        answered, errors = 0, 0
        while answered < clients:
            for socket, _ in poller.poll(100):
                reply = socket.recv()
                poller.unregister(socket)
                answered += 1
                errors += reply[:40].find(b'"error"') >= 0
            if time.time() - started > 300:
                print("gave up after 300 s")
                break
        print(f"{answered} TOPICS of {topics} topics answered in {time.time() - started:.2f} s; {errors} errors",
              flush=True)
        monitor.wait()
    finally:
        daemon.terminate()
        daemon.wait()
        context.destroy(linger=0)


if __name__ == "__main__":
    main()
