#!/usr/bin/python3
"""A subscriber: receives every message whose topic starts with "weather.".

Run: python3 subscriber.py [count]   (stops after count messages; forever without it)

For a primary/backup pair, give both brokers' endpoints (ZPUB_XPUB="tcp://a:5556 tcp://b:5556"):
the socket stays connected to both, and only the active one publishes.
"""
import os
import sys

import zmq

endpoints = os.environ.get("ZPUB_XPUB", "tcp://127.0.0.1:5556").split()
count = int(sys.argv[1]) if len(sys.argv) > 1 else None

context = zmq.Context()
sub = context.socket(zmq.SUB)
for endpoint in endpoints:
    sub.connect(endpoint)
sub.setsockopt(zmq.SUBSCRIBE, b"weather.")  # a prefix; b"" subscribes to everything

received = 0
while count is None or received < count:
    topic, *payload = sub.recv_multipart()
    print(topic.decode(), *(part.decode(errors="replace") for part in payload), flush=True)
    received += 1
