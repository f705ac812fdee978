"""Knocks on a pair endpoint (docs/topologies.md, "A pair") as another broker would: a DEALER
that asks [HISTORY, 0] and prints whether an answer came within a second.

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
dealer.send_multipart([b"HISTORY", b"0"])
print(json.dumps({"answered": dealer.poll(1000) != 0}), flush=True)
context.destroy()
