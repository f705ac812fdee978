#!/usr/bin/python3
"""A subscriber that misses nothing across its own restarts (docs/history.md).

It keeps the history sequence of the last message it handled in a file. On start, with a
position saved, it asks zpubd to replay what it missed (REPLAY, then HISTORY pages) and joins
the live stream with no gap and no duplicate; live, it learns each message's sequence from the
sequence markers ($zpub/seq/<topic>) that follow kept messages. zpubd must keep the prefix:
zpubd --history orders. (with --state-dir to survive zpubd's own restarts too).

Run: python3 resuming_subscriber.py [count]   (stops after count messages; forever without it)
Environment: ZPUB_XPUB, ZPUB_CONTROL, ZPUB_PREFIX (orders.), ZPUB_POSITION_FILE (./position)
"""
import base64
import json
import os
import sys
import uuid

import zmq

xpub = os.environ.get("ZPUB_XPUB", "tcp://127.0.0.1:5556")
control = os.environ.get("ZPUB_CONTROL", "tcp://127.0.0.1:5555")
prefix = os.environ.get("ZPUB_PREFIX", "orders.").encode()
position_file = os.environ.get("ZPUB_POSITION_FILE", "position")
count = int(sys.argv[1]) if len(sys.argv) > 1 else None
SEQ = b"$zpub/seq/"

context = zmq.Context()
sub = context.socket(zmq.SUB)
sub.connect(xpub)
sub.setsockopt(zmq.SUBSCRIBE, prefix)
sub.setsockopt(zmq.SUBSCRIBE, SEQ + prefix)  # the sequence of each kept message
handled = 0


def ask(request):
    req = context.socket(zmq.REQ)
    req.setsockopt(zmq.LINGER, 0)
    req.setsockopt(zmq.RCVTIMEO, 10000)
    req.connect(control)
    req.send_string(request)
    reply = json.loads(req.recv())
    req.close()
    if "error" in reply:
        sys.exit(f"zpubd: {reply['error']['message']}")
    return reply


def handle(sequence, frames):
    """Prints a message and saves its position (None: a message history does not keep)."""
    global handled
    print(frames[0].decode(), *(frame.decode(errors="replace") for frame in frames[1:]), flush=True)
    if sequence is not None:
        with open(position_file + ".new", "w") as file:
            file.write(str(sequence))
        os.replace(position_file + ".new", position_file)
    handled += 1
    return count is not None and handled >= count


def stored(entry):
    # Control replies carry messages exactly: payload frames in base64, and the topic's bytes in
    # topic_base64 when it is not UTF-8.
    topic = base64.b64decode(entry["topic_base64"]) if "topic_base64" in entry else entry["topic"].encode()
    return [topic] + [base64.b64decode(frame) for frame in entry["payload"]]


marker = None
kept_prefixes = []
if os.path.exists(position_file):
    since = int(open(position_file).read())
    token = uuid.uuid4().hex
    marker = b"$zpub/snapshot/" + token.encode()
    sub.setsockopt(zmq.SUBSCRIBE, marker)  # after the data prefix: the broker waits for it
    reply = ask(f"REPLAY {token} {since} {prefix.decode()}")
    if reply.get("gap"):
        print(f"missed {reply['gap']['from']} to {reply['gap']['to']}: no longer kept", file=sys.stderr)
    kept_prefixes = [p.encode() for p in reply["prefixes"]]
    entries = reply["messages"]
    while True:
        for entry in entries:
            if handle(entry["seq"], stored(entry)):
                sys.exit(0)
        if not reply["more"] or not entries:
            break
        reply = ask(f"HISTORY since {entries[-1]['seq']} until {reply['through']} {prefix.decode()}")
        entries = reply["messages"]

pending = None  # a data message, until we know whether a sequence marker follows it
while True:
    if pending is not None and not sub.poll(1000):
        if handle(None, pending):
            break
        pending = None
        continue
    frames = sub.recv_multipart()
    if marker is not None and frames[0] == marker:
        sub.setsockopt(zmq.UNSUBSCRIBE, marker)
        marker = None  # from here on everything is new
        continue
    if frames[0].startswith(SEQ):
        if pending is not None and frames[0][len(SEQ):] == pending[0]:
            done = handle(int(frames[1]), pending)
            pending = None
            if done:
                break
        continue
    if pending is not None:
        if handle(None, pending):
            break
        pending = None
    if marker is not None and any(frames[0].startswith(p) for p in kept_prefixes):
        continue  # before the marker, kept topics were in the replay
    pending = frames
