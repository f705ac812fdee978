"""Subscribes to one very long prefix, waits, then vanishes without cleanup.

The client side of libzmq 4.3.4 itself crashes when it destroys a trie holding such a prefix,
so the process leaves with os._exit: the broker sees a subscription and then a disconnect,
which is the hazard under test (../shared/NOTES.md).
"""
import os
import sys
import time

import zmq

endpoint, length = sys.argv[1], int(sys.argv[2])
context = zmq.Context()
subscriber = context.socket(zmq.SUB)
subscriber.setsockopt(zmq.LINGER, 0)
subscriber.connect(endpoint)
subscriber.setsockopt(zmq.SUBSCRIBE, b"x" * length)
time.sleep(0.3)
print("subscribed", flush=True)
os._exit(0)
