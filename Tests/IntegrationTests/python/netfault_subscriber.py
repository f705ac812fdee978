"""A subscriber for the network fault tests: runs inside a network namespace of its own.

Usage: netfault_subscriber.py ENDPOINT PREFIX HEARTBEAT_IVL_MS HEARTBEAT_TIMEOUT_MS SECONDS [CONNECT_TIMEOUT_MS]

Subscribes to PREFIX with ZMTP heartbeats on its side too (so it notices a dead link and
reconnects by itself), and prints one line per event, flushed at once, each starting with the
monotonic time in seconds:
    <t> connected | disconnected | closed | connect-retried ...   (socket monitor events)
    <t> msg <topic> <first payload frame>
Exits by itself after SECONDS (a bound: the test normally kills it earlier).
"""
import sys
import time

import zmq
from zmq.utils.monitor import recv_monitor_message

endpoint, prefix = sys.argv[1], sys.argv[2].encode()
heartbeat_ivl, heartbeat_timeout, seconds = int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
connect_timeout = int(sys.argv[6]) if len(sys.argv) > 6 else 500

context = zmq.Context()
sub = context.socket(zmq.SUB)
sub.setsockopt(zmq.LINGER, 0)
sub.setsockopt(zmq.HEARTBEAT_IVL, heartbeat_ivl)
sub.setsockopt(zmq.HEARTBEAT_TIMEOUT, heartbeat_timeout)
# Reconnect quickly once the link is back. Without a connect timeout (0: the kernel's), a connect
# started during a partition waits for the kernel's SYN retransmissions (1, 2, 4, 8 s ... apart).
sub.setsockopt(zmq.RECONNECT_IVL, 100)
sub.setsockopt(zmq.RECONNECT_IVL_MAX, 500)
sub.setsockopt(zmq.CONNECT_TIMEOUT, connect_timeout)
sub.setsockopt(zmq.RCVHWM, 0)
monitor = sub.get_monitor_socket(
    zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED | zmq.EVENT_CLOSED | zmq.EVENT_CONNECT_RETRIED
    | zmq.EVENT_HANDSHAKE_SUCCEEDED
)
sub.setsockopt(zmq.SUBSCRIBE, prefix)
sub.connect(endpoint)

names = {
    zmq.EVENT_CONNECTED: "connected",
    zmq.EVENT_DISCONNECTED: "disconnected",
    zmq.EVENT_CLOSED: "closed",
    zmq.EVENT_CONNECT_RETRIED: "connect-retried",
    zmq.EVENT_HANDSHAKE_SUCCEEDED: "handshake-succeeded",
}
poller = zmq.Poller()
poller.register(sub, zmq.POLLIN)
poller.register(monitor, zmq.POLLIN)
print("%.6f started" % time.monotonic(), flush=True)
deadline = time.monotonic() + seconds
while time.monotonic() < deadline:
    ready = dict(poller.poll(100))
    if monitor in ready:
        event = recv_monitor_message(monitor)
        name = names.get(event["event"], str(event["event"]))
        print("%.6f %s" % (time.monotonic(), name), flush=True)
    if sub in ready:
        frames = sub.recv_multipart()
        payload = frames[1].decode(errors="replace") if len(frames) > 1 else ""
        print("%.6f msg %s %s" % (time.monotonic(), frames[0].decode(errors="replace"), payload), flush=True)
print("%.6f done" % time.monotonic(), flush=True)
