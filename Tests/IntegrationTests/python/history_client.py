"""An independent client for HISTORY: a plain pyzmq REQ socket, JSON decoded by Python.
Prints one line per stored message: sequence, topic, payload frames (decoded from base64).
Usage: history_client.py CONTROL_ENDPOINT REQUEST"""
import base64
import json
import sys

import zmq

endpoint, request = sys.argv[1], sys.argv[2]
context = zmq.Context()
socket = context.socket(zmq.REQ)
socket.setsockopt(zmq.LINGER, 0)
socket.setsockopt(zmq.RCVTIMEO, 5000)
socket.connect(endpoint)
socket.send_string(request)
reply = json.loads(socket.recv())
if "error" in reply:
    sys.exit("error: " + reply["error"]["message"])
for message in reply["messages"]:
    frames = [base64.b64decode(frame).decode() for frame in message["payload"]]
    print(message["seq"], message["topic"], frames)
socket.close()
context.term()
