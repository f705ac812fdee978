"""Subscribes to one very long prefix, then vanishes without cleanup.

The client side of libzmq 4.3.4 itself crashes when it destroys a trie holding such a prefix,
so the process leaves with os._exit: the broker sees a subscription and then a disconnect,
which is the hazard under test (../shared/NOTES.md).

Instead of guessing how long the broker needs, the script waits (up to 10 s) for the broker to
drop the connection, which zpubd does as soon as it has read the too long subscription
(ZMQ_MAXMSGSIZE on its XPUB), and says so: "dropped by the broker" or "still connected". It never
reconnects, so once it has been dropped nothing of it is left in the broker.
"""
import os
import sys

import zmq

endpoint, length = sys.argv[1], int(sys.argv[2])
context = zmq.Context()
subscriber = context.socket(zmq.SUB)
subscriber.setsockopt(zmq.LINGER, 0)
subscriber.setsockopt(zmq.RECONNECT_IVL, -1)
monitor = subscriber.get_monitor_socket(zmq.EVENT_DISCONNECTED)
subscriber.connect(endpoint)
subscriber.setsockopt(zmq.SUBSCRIBE, b"x" * length)
print("dropped by the broker" if monitor.poll(10_000) else "still connected", flush=True)
os._exit(0)
