"""A WebSocket client that changes its subscriptions as fast as it can, for
GatewaySubscriptionChurnTests.swift (websocket-client: Debian's python3-websocket).

usage: subscription_churn.py PORT PREFIX CHANGES PAUSE_S AFTER_PREFIX READY_FILE
    Connects to /ws and sends CHANGES requests, subscribe and unsubscribe of PREFIX in turn,
    from a thread of their own, without waiting for replies, while it reads the one reply each
    gets. Prints {"elapsed_s": from before connecting to the last reply, "replies": {type, or
    "error:" and code: count}, "refusal": one refusal}. Then pauses PAUSE_S (a client that slows
    down, as the refusal asks), subscribes to AFTER_PREFIX on the same connection, prints its
    reply, creates READY_FILE, and prints the first frame that follows (20 s at most): the
    message the test publishes, or how the connection ended.
"""
import json
import sys
import threading
import time

import websocket


def frame_json(opcode, data):
    if opcode == websocket.ABNF.OPCODE_TEXT:
        return {"kind": "text", "message": json.loads(data)}
    if opcode == websocket.ABNF.OPCODE_CLOSE:
        code = int.from_bytes(data[:2], "big") if len(data) >= 2 else None
        return {"kind": "close", "code": code, "reason": data[2:].decode("utf-8", "replace")}
    return {"kind": "other", "opcode": opcode}


def churn(port, prefix, changes, pause, after, ready_file):
    started = time.monotonic()
    ws = websocket.create_connection(f"ws://127.0.0.1:{port}/ws", timeout=20)
    requests = [json.dumps({"op": "subscribe" if index % 2 == 0 else "unsubscribe", "prefix": prefix})
                for index in range(changes)]
    sender = threading.Thread(target=lambda: [ws.send(request) for request in requests])
    sender.start()
    replies = {}
    refusal = None
    for _ in range(changes):
        frame = frame_json(*ws.recv_data(control_frame=True))
        if frame["kind"] != "text":
            print(json.dumps({"ended": frame, "replies": replies}), flush=True)
            sys.exit(1)
        message = frame["message"]
        kind = message.get("type")
        if kind == "error":
            kind = "error:" + message.get("code", "")
            refusal = refusal or message
        replies[kind] = replies.get(kind, 0) + 1
    elapsed = time.monotonic() - started
    sender.join()
    print(json.dumps({"elapsed_s": elapsed, "replies": replies, "refusal": refusal}), flush=True)

    time.sleep(pause)
    ws.send(json.dumps({"op": "subscribe", "prefix": after}))
    print(json.dumps({"after": frame_json(*ws.recv_data(control_frame=True))}), flush=True)
    open(ready_file, "w").close()
    print(json.dumps({"then": frame_json(*ws.recv_data(control_frame=True))}), flush=True)
    ws.close()


if __name__ == "__main__":
    port, prefix, changes, pause, after, ready_file = sys.argv[1:]
    churn(int(port), prefix, int(changes), float(pause), after, ready_file)
