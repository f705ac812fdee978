"""A WebSocket client that reconnects in a loop with the same prefix (a page reloaded over
and over), for GatewaySubscriptionChurnTests.swift (websocket-client: Debian's
python3-websocket).

usage: reconnect_loop.py PORT PREFIX COUNT
    COUNT times: connects to /ws, subscribes to PREFIX, reads the reply, closes. Prints
    {"replies": {type: count}, "gaps_s": [from each close to the next subscribe's reply]}.
"""
import json
import sys
import time

import websocket


def loop(port, prefix, count):
    replies = {}
    gaps = []
    closed = None
    for _ in range(count):
        ws = websocket.create_connection(f"ws://127.0.0.1:{port}/ws", timeout=20)
        ws.send(json.dumps({"op": "subscribe", "prefix": prefix}))
        kind = json.loads(ws.recv()).get("type")
        replies[kind] = replies.get(kind, 0) + 1
        if closed is not None:
            gaps.append(time.monotonic() - closed)
        ws.close()
        closed = time.monotonic()
    print(json.dumps({"replies": replies, "gaps_s": gaps}), flush=True)


if __name__ == "__main__":
    port, prefix, count = sys.argv[1:]
    loop(int(port), prefix, int(count))
