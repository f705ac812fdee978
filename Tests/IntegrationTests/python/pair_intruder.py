"""Knocks on a pair endpoint (docs/topologies.md, "A pair") as another broker would: a DEALER
that asks [HISTORY, 0] and prints whether an answer came within three seconds. It asks again
every quarter of a second: the broker answers one HISTORY request at a time and drops one that
comes while its own peer's is being answered (on a loaded machine, once, for the whole of a
one-second wait).

usage: pair_intruder.py ENDPOINT [SERVER_PUBLIC_FILE CLIENT_PUBLIC_FILE CLIENT_SECRET_FILE]
With the key files (zpub keygen's format: a comment line, then the Z85 key) it speaks CURVE.
prints {"answered": true|false}
"""
import json
import sys

import zmq


def key(path):
    return [line.strip() for line in open(path) if line.strip() and not line.startswith("#")][0].encode()


endpoint = sys.argv[1]
context = zmq.Context()
dealer = context.socket(zmq.DEALER)
dealer.setsockopt(zmq.LINGER, 0)
if len(sys.argv) > 4:
    dealer.curve_serverkey = key(sys.argv[2])
    dealer.curve_publickey = key(sys.argv[3])
    dealer.curve_secretkey = key(sys.argv[4])
dealer.connect(endpoint)
answered = False
for _ in range(12):
    try:
        # Never blocks: refused at the handshake, the DEALER has no peer to queue for.
        dealer.send_multipart([b"HISTORY", b"0"], zmq.NOBLOCK)
    except zmq.Again:
        pass
    if dealer.poll(250) != 0:
        answered = True
        break
print(json.dumps({"answered": answered}), flush=True)
context.destroy()
