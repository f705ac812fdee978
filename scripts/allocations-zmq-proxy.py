#!/usr/bin/python3
"""Allocations per forwarded message of libzmq's own zmq_proxy (PULL -> PUB over TCP on
loopback), counted by the same malloc counter as zpubd's AllocationTests: the baseline for the
0.007-0.013 per message those tests count for zpubd (docs/performance.md, "The allocation
test"). The proxy runs in a child Python process with libMallocCounter.so preloaded, in
pyzmq's zmq.proxy_steerable so that a TERMINATE lets it exit normally and the counter report.
Like the tests: 10,000 and then 210,000 messages of two frames (a topic of 7 bytes, 32 bytes of
payload) to one subscriber; the difference over 200,000.

Usage: scripts/allocations-zmq-proxy.py [path to libMallocCounter.so]  (after `swift build`)
"""
import os
import random
import subprocess
import sys
import tempfile
import time

import zmq

PROXY = """
import sys, zmq
pull, pub, control = sys.argv[1:4]
ctx = zmq.Context()
f = ctx.socket(zmq.PULL); f.setsockopt(zmq.RCVHWM, 10000); f.bind(pull)
b = ctx.socket(zmq.PUB); b.setsockopt(zmq.SNDHWM, 0); b.bind(pub)
c = ctx.socket(zmq.PAIR); c.bind(control)
zmq.proxy_steerable(f, b, None, c)
f.close(0); b.close(0); c.close(0); ctx.term()
"""


def run(library, count):
    report = tempfile.mktemp(prefix="zpub-malloc-")
    port = random.randint(20000, 60000)
    pull, pub, control = ("tcp://127.0.0.1:%d" % (port + k) for k in range(3))
    env = dict(os.environ, LD_PRELOAD=library, ZPUB_MALLOC_COUNT_FILE=report)
    proxy = subprocess.Popen(["/usr/bin/python3", "-c", PROXY, pull, pub, control], env=env)
    context = zmq.Context()
    subscriber = context.socket(zmq.SUB)
    subscriber.setsockopt(zmq.RCVHWM, 0)
    subscriber.setsockopt(zmq.SUBSCRIBE, b"t")
    subscriber.connect(pub)
    producer = context.socket(zmq.PUSH)
    producer.setsockopt(zmq.SNDHWM, 0)
    producer.connect(pull)
    # Until one message gets through: the proxy is up and the subscription is in place.
    while True:
        producer.send_multipart([b"t.warm", b"x"])
        if subscriber.poll(100):
            subscriber.recv_multipart()
            break
    payload = b"x" * 32
    for i in range(count):
        producer.send_multipart([b"t.%05d" % (i % 1000), payload])
    received = 0
    while received < count:
        if subscriber.recv_multipart()[0] != b"t.warm":
            received += 1
    steer = context.socket(zmq.PAIR)
    steer.connect(control)
    steer.send(b"TERMINATE")
    proxy.wait(timeout=30)
    context.destroy(0)
    try:
        with open(report) as file:
            allocations = int(file.read())
    except (OSError, ValueError):
        sys.exit("the proxy wrote no allocation count (exit status %s): was %s preloaded?" % (proxy.returncode, library))
    os.unlink(report)
    return allocations


def main():
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    library = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, ".build/debug/libMallocCounter.so")
    if not os.path.isfile(library):
        sys.exit("no malloc counter at %s: build it with `swift build` (make test does), or name it" % library)
    few, many = run(library, 10_000), run(library, 210_000)
    print("zmq_proxy PULL -> PUB: %d allocations for 10,000 messages, %d for 210,000: %.4f per extra message"
          % (few, many, (many - few) / 200_000))


main()
