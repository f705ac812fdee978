"""A plain pyzmq SUB client that learns each kept message's history sequence: it subscribes
to PREFIX and to $zpub/seq/PREFIX, and every kept message is followed by its marker
[$zpub/seq/<topic>, <sequence>]. Prints one line per message: sequence (or - for a message
history does not keep), topic, payload. Writes READY_FILE once subscribed.
Usage: sequence_markers.py XPUB_ENDPOINT PREFIX COUNT READY_FILE"""
import sys

import zmq

endpoint, prefix, count, ready = sys.argv[1], sys.argv[2].encode(), int(sys.argv[3]), sys.argv[4]
context = zmq.Context()
socket = context.socket(zmq.SUB)
socket.setsockopt(zmq.RCVTIMEO, 10000)
socket.connect(endpoint)
socket.setsockopt(zmq.SUBSCRIBE, prefix)
socket.setsockopt(zmq.SUBSCRIBE, b"$zpub/seq/" + prefix)
open(ready, "w").close()
pending = None  # a data message waiting to learn whether a marker follows
printed = 0
while printed < count:
    # A marker follows its message at once (same pipe): a pending message with nothing after
    # it for a second has none.
    if pending is not None and not socket.poll(1000):
        print("-", pending[0].decode(), pending[1].decode(), flush=True)
        printed += 1
        pending = None
        continue
    frames = socket.recv_multipart()
    if frames[0].startswith(b"$zpub/seq/"):
        topic = frames[0][len(b"$zpub/seq/"):]
        assert pending is not None and pending[0] == topic, f"marker {frames} after {pending}"
        print(int(frames[1]), topic.decode(), pending[1].decode(), flush=True)
        pending = None
        printed += 1
        continue
    if pending is not None:  # the previous message had no marker: not kept
        print("-", pending[0].decode(), pending[1].decode(), flush=True)
        printed += 1
    pending = frames
socket.close()
context.term()
