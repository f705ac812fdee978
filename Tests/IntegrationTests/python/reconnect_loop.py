"""A WebSocket client that reconnects in a loop with the same prefix (a page reloaded over
and over), for GatewaySubscriptionChurnTests.swift (websocket-client: Debian's
python3-websocket).

usage: reconnect_loop.py PORT PREFIX COUNT [MESSAGES]
    COUNT times: connects to /ws, subscribes to PREFIX, reads the reply and then MESSAGES (0)
    messages (10 s at most each), closes. Prints {"replies": {type: count}, "topics": {topic:
    count} of the messages, "gaps_s": [from each close to the next subscribe's reply]}.
"""
import json
import sys
import time

import websocket


def loop(port, prefix, count, messages):
    replies = {}
    topics = {}
    gaps = []
    closed = None
    for _ in range(count):
        ws = websocket.create_connection(f"ws://127.0.0.1:{port}/ws", timeout=20)
        ws.send(json.dumps({"op": "subscribe", "prefix": prefix}))
        kind = json.loads(ws.recv()).get("type")
        replies[kind] = replies.get(kind, 0) + 1
        if closed is not None:
            gaps.append(time.monotonic() - closed)
        for _ in range(messages):
            ws.settimeout(10)
            try:
                topic = json.loads(ws.recv()).get("topic")
            except websocket.WebSocketTimeoutException:
                topic = "(none within 10 s)"
            topics[topic] = topics.get(topic, 0) + 1
        ws.close()
        closed = time.monotonic()
    print(json.dumps({"replies": replies, "topics": topics, "gaps_s": gaps}), flush=True)


if __name__ == "__main__":
    port, prefix, count = sys.argv[1:4]
    loop(int(port), prefix, int(count), int(sys.argv[4]) if len(sys.argv) > 4 else 0)
