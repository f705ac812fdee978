"""Untrusted peers flooding a broker's XPUB port with subscription frames: PEERS XSUB sockets
send random subscribe and unsubscribe frames (prefixes of 1 to MAX_BYTES random bytes) as fast
as they can for SECONDS, never blocking (a full pipe skips that peer; when all are full, it
waits for room). Prints "ready" once every
peer is connected, then "sent N" at the end.
Usage: subscription_flood.py XPUB_ENDPOINT PEERS MAX_BYTES SECONDS"""
import os
import random
import sys
import time

import zmq

endpoint, peers, max_bytes, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
context = zmq.Context()
sockets = []
for _ in range(peers):
    socket = context.socket(zmq.XSUB)
    socket.setsockopt(zmq.LINGER, 0)
    socket.setsockopt(zmq.SNDHWM, 1000)
    socket.connect(endpoint)
    sockets.append(socket)
print("ready", flush=True)  # the test waits on the broker's peer count

# A pool of random bytes to slice prefixes from: os.urandom per frame would dominate the cost.
pool = os.urandom(1 << 20)
sent = 0
deadline = time.monotonic() + seconds
rng = random.Random(7)
# When every peer's pipe is full, wait until one has room instead of spinning: the peers stand
# for machines of their own, whose CPU is not the broker's; a spinning flood on the broker's
# own two cores would slow it down by taking the CPU, which no remote peer can.
poller = zmq.Poller()
for socket in sockets:
    poller.register(socket, zmq.POLLOUT)
while time.monotonic() < deadline:
    progress = False
    for socket in sockets:
        for _ in range(16):
            length = rng.randint(1, max_bytes)
            start = rng.randrange(0, len(pool) - length)
            frame = (b"\x01" if rng.random() < 0.5 else b"\x00") + pool[start : start + length]
            try:
                socket.send(frame, zmq.NOBLOCK)
                sent += 1
                progress = True
            except zmq.Again:
                break
    if not progress:
        poller.poll(10)
print(f"sent {sent}", flush=True)
for socket in sockets:
    socket.close()
context.term()
