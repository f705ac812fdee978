#!/usr/bin/python3
"""A subscriber that misses nothing across its own restarts and zpubd's (docs/history.md).

It keeps the history sequence of the last message it handled in a file. On start with a
position saved, and each time its connection to zpubd comes back (zpubd restarted: what zpubd
still held for it went with the old connection, and what was published before it subscribed
again never came), it asks zpubd to replay what it missed (REPLAY, then HISTORY pages). Live,
it learns each message's sequence from the sequence markers ($zpub/seq/<topic>) that follow
kept messages, and skips the kept messages a replay already gave it: no gap, no duplicate.
zpubd must keep the prefix: zpubd --history orders. (with --state-dir to keep it across
zpubd's own restarts too).

Run: python3 resuming_subscriber.py [count]   (stops after count messages; forever without it)
Environment: ZPUB_XPUB, ZPUB_CONTROL, ZPUB_PREFIX (orders.), ZPUB_POSITION_FILE (./position)
"""
import base64
import json
import os
import sys
import uuid

import zmq
from zmq.utils.monitor import recv_monitor_message

xpub = os.environ.get("ZPUB_XPUB", "tcp://127.0.0.1:5556")
control = os.environ.get("ZPUB_CONTROL", "tcp://127.0.0.1:5555")
prefix = os.environ.get("ZPUB_PREFIX", "orders.").encode()
position_file = os.environ.get("ZPUB_POSITION_FILE", "position")
count = int(sys.argv[1]) if len(sys.argv) > 1 else None
SEQ = b"$zpub/seq/"
SNAPSHOT = b"$zpub/snapshot/"

context = zmq.Context()
sub = context.socket(zmq.SUB)
# A connection lost and made again is the cue to replay: a SUB alone reconnects in silence.
monitor = sub.get_monitor_socket(zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED)
sub.connect(xpub)
sub.setsockopt(zmq.SUBSCRIBE, prefix)
sub.setsockopt(zmq.SUBSCRIBE, SEQ + prefix)  # the sequence of each kept message
position = int(open(position_file).read()) if os.path.exists(position_file) else None
replayed_through = 0  # kept messages up to this sequence came in a replay
kept_prefixes = []  # what history keeps, as the last replay said
marker = None  # the marker topic of the replay under way, until it arrives live
handled = 0


def say(text):
    print(text, file=sys.stderr, flush=True)


def ask(request):
    """One request to zpubd's control socket, asked again while zpubd does not answer (it may
    be starting); exits with zpubd's message if the answer is an error."""
    while True:
        req = context.socket(zmq.REQ)
        req.setsockopt(zmq.LINGER, 0)
        req.setsockopt(zmq.RCVTIMEO, 10000)
        req.connect(control)
        req.send_string(request)
        try:
            reply = json.loads(req.recv())
        except zmq.Again:
            say(f"zpubd at {control} did not answer within 10 s (is it running?); asking again")
            continue
        finally:
            req.close()
        if "error" in reply:
            sys.exit(f"zpubd: {reply['error']['message']}")
        return reply


def save_position(sequence):
    global position
    with open(position_file + ".new", "w") as file:
        file.write(str(sequence))
    os.replace(position_file + ".new", position_file)
    position = sequence


def handle(sequence, frames):
    """Prints a message and saves its position (None: a message history does not keep)."""
    global handled
    print(frames[0].decode(), *(frame.decode(errors="replace") for frame in frames[1:]), flush=True)
    if sequence is not None:
        save_position(sequence)
    handled += 1
    return count is not None and handled >= count


def stored(entry):
    # Control replies carry messages exactly: payload frames in base64, and the topic's bytes in
    # topic_base64 when it is not UTF-8.
    topic = base64.b64decode(entry["topic_base64"]) if "topic_base64" in entry else entry["topic"].encode()
    return [topic] + [base64.b64decode(frame) for frame in entry["payload"]]


def tell_losses(reply):
    """What history could not give back: evicted (its bounds), or never kept."""
    if reply.get("gap"):
        say(f"missed {reply['gap']['from']} to {reply['gap']['to']}: no longer kept")
    for lost in reply.get("not_kept", []):
        say(f"{lost['from']} to {lost['to']} were not kept ({lost['reason']}): lost, if any was under {prefix.decode()}")


def replay(since):
    """Handles every kept message after `since`; live messages go on after the marker. True
    when `count` messages have been handled."""
    global marker, replayed_through, kept_prefixes
    if marker is not None:
        sub.setsockopt(zmq.UNSUBSCRIBE, marker)
    token = uuid.uuid4().hex
    marker = SNAPSHOT + token.encode()
    sub.setsockopt(zmq.SUBSCRIBE, marker)  # after the data prefix: the broker waits for it
    reply = ask(f"REPLAY {token} {since} {prefix.decode()}")
    if "warning" in reply:
        say(f"zpubd: {reply['warning']}")
    if reply["through"] < since:
        # zpubd restarted without its state directory: its numbers start again from 1.
        say(f"zpubd's numbering started again (it is at {reply['through']}, below {since}): replaying all it keeps")
        save_position(0)  # its new numbers are all new to us, now and after our own restart
        return replay(0)
    tell_losses(reply)
    replayed_through = reply["through"]
    kept_prefixes = [p.encode() for p in reply["prefixes"]]
    entries = reply["messages"]
    replayed = 0
    while True:
        for entry in entries:
            replayed += 1
            if handle(entry["seq"], stored(entry)):
                return True
        if not reply["more"] or not entries:
            say(f"replayed {replayed} kept message(s) after {since}, through {replayed_through}; live from here")
            return False
        reply = ask(f"HISTORY since {entries[-1]['seq']} until {replayed_through} {prefix.decode()}")
        tell_losses(reply)
        entries = reply["messages"]


def live(sequence, frames):
    """A message from the live stream; a kept one a replay gave already is skipped."""
    if sequence is not None and sequence <= max(position or 0, replayed_through):
        return False
    return handle(sequence, frames)


if position is not None and replay(position):
    sys.exit(0)
poller = zmq.Poller()
poller.register(sub, zmq.POLLIN)
poller.register(monitor, zmq.POLLIN)
disconnected = False
pending = None  # a data message, until we know whether a sequence marker follows it
while True:
    ready = dict(poller.poll(1000 if pending is not None else None))
    if monitor in ready:
        event = recv_monitor_message(monitor)["event"]
        if event == zmq.EVENT_DISCONNECTED:
            disconnected = True
        elif event == zmq.EVENT_CONNECTED and disconnected:
            disconnected = False
            if position is None:
                say("connected to zpubd again; no kept message handled yet, so nothing to replay")
                continue
            if replay(position):
                break
            # A message whose marker went with the old connection: the replay had it if kept.
            if pending is not None and not any(pending[0].startswith(p) for p in kept_prefixes):
                if live(None, pending):
                    break
            pending = None
        continue
    if sub not in ready:
        # No marker within a second: not kept. Not while disconnected: its marker may have
        # gone with the connection, and the replay then brings it.
        if pending is not None and not disconnected:
            if live(None, pending):
                break
            pending = None
        continue
    frames = sub.recv_multipart()
    if frames[0].startswith(SNAPSHOT):
        if frames[0] == marker:
            sub.setsockopt(zmq.UNSUBSCRIBE, marker)
            marker = None
        continue  # a replay's marker: not a message
    if frames[0].startswith(SEQ):
        if pending is not None and frames[0][len(SEQ):] == pending[0]:
            done = live(int(frames[1]), pending)
            pending = None
            if done:
                break
        continue
    if pending is not None:
        if live(None, pending):
            break
        pending = None
    pending = frames
