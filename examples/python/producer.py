#!/usr/bin/python3
"""A producer: PUSHes results to zpubd, which republishes them to every subscriber.

PUSH never blocks the producer while zpubd is up: messages queue in the socket and zpubd
takes them as fast as it can. Run: python3 producer.py [count]

For a primary/backup pair, give both brokers' endpoints (ZPUB_PULL="tcp://a:5557 tcp://b:5557"):
with ZMQ_IMMEDIATE the socket sends only to a broker that accepts connections, which is the
active one (docs/topologies.md, "A pair").
"""
import os
import sys
import time

import zmq

endpoints = os.environ.get("ZPUB_PULL", "tcp://127.0.0.1:5557").split()
count = int(sys.argv[1]) if len(sys.argv) > 1 else 10

context = zmq.Context()
push = context.socket(zmq.PUSH)
push.setsockopt(zmq.LINGER, 5000)  # deliver what is queued, but never hang on exit
push.setsockopt(zmq.IMMEDIATE, 1)  # queue only for a broker that is there (the active one)
for endpoint in endpoints:
    push.connect(endpoint)

for i in range(count):
    # Frame 1 is the topic subscribers filter on; the others are the payload, delivered as is.
    push.send_multipart([b"weather.paris", str(i).encode(), b'{"celsius": 12}'])
    time.sleep(0.01)

push.close()
context.term()
