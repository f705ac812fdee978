"""A pyzmq SUB on a PGM multicast group, run by MulticastTests.swift inside a network namespace.

Usage: multicast_subscriber.py ENDPOINT PREFIX COUNT READY_FILE

Subscribes to PREFIX (the filter runs here: over PGM, subscriptions never reach the sender),
creates READY_FILE at the first message on PREFIX + "probe" (the group is joined), then prints
every message on PREFIX + "data" as "topic payload" lines until COUNT of them, or 20 s of
silence. Prints every other message it gets as "unexpected topic".
"""
import sys

import zmq

endpoint, prefix, count, ready = sys.argv[1], sys.argv[2].encode(), int(sys.argv[3]), sys.argv[4]
context = zmq.Context()
sub = context.socket(zmq.SUB)
sub.setsockopt(zmq.RCVTIMEO, 20000)
sub.connect(endpoint)
sub.setsockopt(zmq.SUBSCRIBE, prefix)
received = 0
joined = False
try:
    while received < count:
        topic, *payload = sub.recv_multipart()
        if topic == prefix + b"probe":
            if not joined:
                open(ready, "w").close()
                joined = True
        elif topic == prefix + b"data":
            print(topic.decode(), b" ".join(payload).decode(), flush=True)
            received += 1
        else:
            print("unexpected", topic.decode(errors="replace"), flush=True)
except zmq.Again:
    print("timeout", flush=True)
sub.close(linger=0)
context.term()
