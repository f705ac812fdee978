"""A peer to be killed: a subscriber (prints each message, flushed) or a producer (pushes
until killed). Usage: killable_peer.py sub XPUB PREFIX... | push PULL"""
import sys
import time

import zmq

role, endpoint = sys.argv[1], sys.argv[2]
context = zmq.Context()
if role == "sub":
    sub = context.socket(zmq.SUB)
    sub.connect(endpoint)
    for prefix in sys.argv[3:]:
        sub.setsockopt(zmq.SUBSCRIBE, prefix.encode())
    print("ready", flush=True)
    while True:
        print(b" ".join(sub.recv_multipart()).decode(errors="replace"), flush=True)
else:
    push = context.socket(zmq.PUSH)
    push.connect(endpoint)
    i = 0
    while True:
        push.send_multipart([b"flood", str(i).encode()])
        i += 1
        if i % 100 == 0:
            time.sleep(0.001)
