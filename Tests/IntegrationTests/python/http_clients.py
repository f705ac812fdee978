"""Real HTTP clients for zpubd's gateway, run by HTTPGatewayTests.swift with Debian's python3:
websocket-client (python3-websocket) for WebSocket, http.client for Server-Sent Events, and
prometheus_client's parser (python3-prometheus-client) for /metrics.

Each command prints one JSON document (or JSON lines) on stdout for the Swift test to check.
"""
import http.client
import itertools
import json
import os
import socket
import sys
import time

import websocket

# websocket-client 1.2.3 (Debian 12's) raises "Invalid close opcode" at close codes 1012 and
# 1013, which IANA registered after RFC 6455 (service restart, try again later) and browsers
# accept; the gateway closes with 1013 when a client should come back later. Accepted here as
# newer clients do, so that a test sees the code and the reason.
if 1013 not in websocket._abnf.VALID_CLOSE_STATUS:
    websocket._abnf.VALID_CLOSE_STATUS += (1012, 1013)


def ws_url(port, query=""):
    return f"ws://127.0.0.1:{port}/ws{query}"


def is_ping_or_pong(opcode):
    """The server pings every ping_interval (websocket-client answers by itself): not a message,
    and on a loaded machine one can come between any two (a ping counted as the awaited message
    ended a client before it)."""
    return opcode in (websocket.ABNF.OPCODE_PING, websocket.ABNF.OPCODE_PONG)


def frame_of(opcode, data):
    if opcode == websocket.ABNF.OPCODE_TEXT:
        return {"kind": "text", "message": json.loads(data)}
    if opcode == websocket.ABNF.OPCODE_BINARY:
        frames, at = [], 0
        while at + 4 <= len(data):
            n = int.from_bytes(data[at:at + 4], "big")
            frames.append(data[at + 4:at + 4 + n].hex())
            at += 4 + n
        return {"kind": "binary", "frames_hex": frames}
    if opcode == websocket.ABNF.OPCODE_CLOSE:
        code = int.from_bytes(data[:2], "big") if len(data) >= 2 else None
        return {"kind": "close", "code": code, "reason": data[2:].decode("utf-8", "replace")}
    return {"kind": "other", "opcode": opcode}


def ws_subscribe(port, prefixes, count, ready_file=None, publish=None, token=None, progress_file=None):
    """Subscribes, writes ready_file once every subscription is acknowledged, prints `count` data
    messages as JSON lines (then exits). With progress_file, keeps the number of data messages
    received so far in it (rewritten every 10 messages), for a producer to pace itself by."""
    ws = websocket.create_connection(ws_url(port), timeout=20)
    for prefix in prefixes:
        request = {"op": "subscribe", "prefix": prefix}
        if token:
            request["token"] = token
        ws.send(json.dumps(request))
    acknowledged = 0
    received = []
    while len(received) < count:
        opcode, data = ws.recv_data(control_frame=True)
        if is_ping_or_pong(opcode):
            continue
        frame = frame_of(opcode, data)
        if frame["kind"] == "text" and frame["message"].get("type") in ("subscribed", "error"):
            print(json.dumps({"ack": frame["message"]}), flush=True)
            acknowledged += 1
            if acknowledged == len(prefixes):
                if publish:
                    ws.send(json.dumps({"op": "publish", "topic": publish[0], "payload": publish[1]}))
                if ready_file:
                    open(ready_file, "w").close()
            continue
        if frame["kind"] == "close":
            print(json.dumps(frame), flush=True)
            break
        received.append(frame)
        print(json.dumps(frame), flush=True)
        if progress_file and (len(received) % 10 == 0 or len(received) == count):
            with open(progress_file + ".new", "w") as out:
                out.write(str(len(received)))
            os.replace(progress_file + ".new", progress_file)
    ws.close()


def ws_since(port, requests, until_topic, ready_file, query=""):
    """Sends each subscribe request (JSON objects, e.g. with "since"), writes ready_file once all
    are acknowledged, and the query's prefixes confirmed too (and ready_file + ".caught_up" at a
    caught_up message), and prints every frame as a JSON line until a message on until_topic.
    With neither requests nor prefixes, ready_file is written once connected; a refused upgrade
    prints its status."""
    from urllib.parse import parse_qs
    try:
        ws = websocket.create_connection(ws_url(port, query), timeout=20)
    except websocket.WebSocketBadStatusException as error:
        print(json.dumps({"status": error.status_code}), flush=True)
        return
    for request in requests:
        ws.send(json.dumps(request))
    # The gateway confirms each of the URL's prefixes with a `subscribed`, as a request's.
    expected = len(requests) + len(set(parse_qs(query.lstrip("?")).get("prefix", [])))
    if expected == 0 and ready_file:
        open(ready_file, "w").close()
    acknowledged = 0
    while True:
        opcode, data = ws.recv_data(control_frame=True)
        if is_ping_or_pong(opcode):
            continue
        frame = frame_of(opcode, data)
        print(json.dumps(frame), flush=True)
        if frame["kind"] != "text":
            break
        message = frame["message"]
        if message.get("type") in ("subscribed", "unsubscribed", "error") and "prefix" in message:
            acknowledged += 1
            if acknowledged == expected and ready_file:
                open(ready_file, "w").close()
        if message.get("type") == "caught_up" and ready_file:
            open(ready_file + ".caught_up", "w").close()
        if message.get("type") == "message" and message.get("topic") == until_topic:
            break
    ws.close()


def ws_publish_reply(port, topic, wait_s):
    """Publishes one message on `topic` and prints the first text frame that comes back within
    `wait_s` seconds (a successful publish has no reply), or null."""
    ws = websocket.create_connection(ws_url(port), timeout=wait_s)
    ws.send(json.dumps({"op": "publish", "topic": topic, "payload": "one"}))
    reply = None
    try:
        while reply is None:
            opcode, data = ws.recv_data(control_frame=True)
            if not is_ping_or_pong(opcode):
                reply = frame_of(opcode, data)
    except websocket.WebSocketTimeoutException:
        pass
    print(json.dumps(reply), flush=True)
    ws.close()


def ws_requests(port, requests, ready_prefix, ready_file, until_topic, query=""):
    """Connects to /ws+QUERY, sends every request (JSON objects) back to back, writes ready_file
    as soon as `subscribed` for ready_prefix arrives, and prints every frame as a JSON line, each
    with the seconds since the requests were sent, until a message on until_topic."""
    ws = websocket.create_connection(ws_url(port, query), timeout=60)
    started = time.monotonic()
    for request in requests:
        ws.send(json.dumps(request))
    while True:
        opcode, data = ws.recv_data(control_frame=True)
        if is_ping_or_pong(opcode):
            continue
        frame = frame_of(opcode, data)
        frame["after_s"] = round(time.monotonic() - started, 3)
        print(json.dumps(frame), flush=True)
        if frame["kind"] != "text":
            break
        message = frame["message"]
        if message.get("type") == "subscribed" and message.get("prefix") == ready_prefix:
            open(ready_file, "w").close()
        if message.get("type") == "message" and message.get("topic") == until_topic:
            break
    ws.close()


def flood_subscriptions(context, xpub, count):
    """Queues COUNT subscription frames at the broker's XPUB from an XSUB of its own (the
    forwarding loop applies them some 5 µs each); returns the socket, to be closed after."""
    import zmq
    flood = context.socket(zmq.XSUB)
    flood.setsockopt(zmq.SNDHWM, 0)
    flood.setsockopt(zmq.LINGER, 0)
    flood.connect(xpub)
    for number in range(count):
        flood.send(b"\x01flood.%07d." % number)
    return flood


def ws_behind_flood(port, xpub, pull, count, prefix="job.4.", topic="job.4.done", via="request"):
    """Queues COUNT subscription frames at the broker's XPUB (`flood_subscriptions`), then
    subscribes PREFIX over WebSocket (VIA a request, or "url": in the URL); once told
    `subscribed`, pushes TOPIC into PULL and waits up to 5 s for it. Prints when the reply came,
    whether the message did, and the frames."""
    import zmq
    context = zmq.Context()
    push = context.socket(zmq.PUSH)
    push.connect(pull)
    if via == "url":
        flood = flood_subscriptions(context, xpub, count)
        started = time.monotonic()
        ws = websocket.create_connection(ws_url(port, "?prefix=" + prefix), timeout=20)
    else:
        ws = websocket.create_connection(ws_url(port), timeout=20)
        flood = flood_subscriptions(context, xpub, count)
        started = time.monotonic()
        ws.send(json.dumps({"op": "subscribe", "prefix": prefix}))
    result = {"frames": []}

    def until(wanted):
        """Reads frames (into the result) until one `wanted` says is it."""
        while True:
            opcode, data = ws.recv_data(control_frame=True)
            if is_ping_or_pong(opcode):
                continue
            frame = frame_of(opcode, data)
            result["frames"].append(frame)
            if wanted(frame.get("message", {})):
                return

    until(lambda message: message.get("type") == "subscribed")
    result["subscribed_after_s"] = round(time.monotonic() - started, 3)
    push.send_multipart([topic.encode(), b"44"])
    ws.settimeout(5)
    try:
        until(lambda message: message.get("topic") == topic)
        result["received"] = True
    except websocket.WebSocketTimeoutException:
        result["received"] = False
    print(json.dumps(result), flush=True)
    ws.close()
    flood.close()
    push.close(linger=1000)
    context.term()


def sse_behind_flood(port, xpub, pull, count, prefix, topic):
    """As ws_behind_flood, for an event stream of PREFIX: once its `subscribed` event came,
    pushes TOPIC and waits up to 5 s for it. Prints the events (names and data), when the
    `subscribed` event came and whether the message did."""
    import zmq
    context = zmq.Context()
    push = context.socket(zmq.PUSH)
    push.connect(pull)
    flood = flood_subscriptions(context, xpub, count)
    started = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    connection.request("GET", "/events?prefix=" + prefix, headers={"Accept": "text/event-stream"})
    response = connection.getresponse()
    result = {"status": response.status, "events": []}
    event = {}
    try:
        while True:
            line = response.readline().decode("utf-8")
            if line == "":
                break
            line = line.rstrip("\n")
            if line.startswith(":"):
                continue
            if line != "":
                name, _, value = line.partition(":")
                event[name] = value[1:] if value.startswith(" ") else value
                continue
            if "data" in event:
                data = json.loads(event["data"])
                result["events"].append({"event": event.get("event", "message"), "data": data})
                if event.get("event") == "subscribed":
                    result["subscribed_after_s"] = round(time.monotonic() - started, 3)
                    push.send_multipart([topic.encode(), b"45"])
                    connection.sock.settimeout(5)
                elif data.get("topic") == topic:
                    result["received"] = True
                    break
            event = {}
    except (socket.timeout, TimeoutError):
        pass
    result.setdefault("received", False)
    print(json.dumps(result), flush=True)
    connection.close()
    flood.close()
    push.close(linger=1000)
    context.term()


def close_after(port, send, timeout=10):
    """Sends something on a fresh connection, then reads up to the server's close frame: returns
    the close frame (with "then": whether the server hung up afterwards), or how the wait ended
    ("eof", or "timeout": the connection stayed open and silent)."""
    ws = websocket.create_connection(ws_url(port), timeout=timeout)
    try:
        send(ws)
    except OSError:
        pass  # the server may hang up before the whole frame is sent; its close frame is read below
    while True:
        try:
            # recv_frame does not answer a close by itself (the server may be gone already).
            raw = ws.recv_frame()
        except websocket.WebSocketTimeoutException:
            return {"kind": "timeout"}
        except (websocket.WebSocketConnectionClosedException, OSError):
            return {"kind": "eof"}
        frame = frame_of(raw.opcode, raw.data)
        if frame["kind"] == "close":
            try:
                while ws.recv_frame():
                    pass
            except websocket.WebSocketTimeoutException:
                frame["then"] = "open"
            except (websocket.WebSocketConnectionClosedException, OSError):
                frame["then"] = "eof"
            return frame


def ws_publish_until_busy(port, topic, count):
    """Publishes `count` messages on `topic` without waiting, then reads until the first
    broker_busy error (20 s at most). prints {"sent": n, "busy": frame or null, "busy_seen": n}"""
    ws = websocket.create_connection(ws_url(port), timeout=20)
    for number in range(count):
        ws.send(json.dumps({"op": "publish", "topic": topic, "payload": str(number)}))
    busy, seen = None, 0
    deadline = time.time() + 20
    try:
        while busy is None and time.time() < deadline:
            frame = frame_of(*ws.recv_data(control_frame=True))
            seen += 1
            if frame.get("message", {}).get("code") == "broker_busy":
                busy = frame["message"]
            elif frame["kind"] == "close":
                break
    except websocket.WebSocketTimeoutException:
        pass
    print(json.dumps({"sent": count, "busy": busy, "frames_seen": seen}), flush=True)
    ws.close()


def ws_publish_one(port, topic, size):
    """Publishes one message on `topic` with a payload of `size` bytes, then prints the first
    frame that comes within 10 s (a refusal; a publish taken is answered nothing), or null."""
    ws = websocket.create_connection(ws_url(port), timeout=10)
    ws.send(json.dumps({"op": "publish", "topic": topic, "payload": "x" * size}))
    try:
        frame = frame_of(*ws.recv_data(control_frame=True))
    except websocket.WebSocketTimeoutException:
        frame = None
    print(json.dumps({"frame": frame}), flush=True)
    ws.close()


def healthz_burst(port, count):
    """`count` GET /healthz at once, each on its own connection. prints {"statuses": {code: n}}"""
    import threading
    statuses = {}
    lock = threading.Lock()

    def get():
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            connection.request("GET", "/healthz")
            status = str(connection.getresponse().status)
            connection.close()
        except Exception as error:  # noqa: BLE001 - reported, not raised
            status = type(error).__name__
        with lock:
            statuses[status] = statuses.get(status, 0) + 1

    threads = [threading.Thread(target=get) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(json.dumps({"statuses": statuses}), flush=True)


def ws_bad_requests(port):
    """Each bad request on a fresh connection: what the server answered."""
    results = {}
    results["not_json"] = close_after(port, lambda ws: ws.send("subscribe weather."))
    results["unknown_op"] = close_after(port, lambda ws: ws.send(json.dumps({"op": "frobnicate"})))
    results["no_prefix"] = close_after(port, lambda ws: ws.send(json.dumps({"op": "subscribe"})))
    results["binary"] = close_after(port, lambda ws: ws.send_binary(b"\x00\x01"))
    results["oversized"] = close_after(port, lambda ws: ws.send("x" * 70_000))
    ws = websocket.create_connection(ws_url(port), timeout=10)
    ws.send(json.dumps({"op": "publish", "topic": "nope.x", "payload": "hi"}))
    results["publish_not_allowed"] = frame_of(*ws.recv_data(control_frame=True))
    ws.send(json.dumps({"op": "subscribe", "prefix": "private."}))
    results["token_required"] = frame_of(*ws.recv_data(control_frame=True))
    ws.send(json.dumps({"op": "subscribe", "prefix": "private.", "token": "wrong-token-xx"}))
    results["wrong_token"] = frame_of(*ws.recv_data(control_frame=True))
    ws.send(json.dumps({"op": "refresh", "token": "s3cret-token-123"}))
    results["static_refresh"] = frame_of(*ws.recv_data(control_frame=True))
    ws.send(json.dumps({"op": "publish", "topic": "$zpub/seq/x", "payload": "18446744073709551615"}))
    results["zpub_topic"] = frame_of(*ws.recv_data(control_frame=True))
    # More prefixes than a client may hold (max_client_prefixes, 64): one error for the request,
    # then the answer to the next request, not a reply per prefix.
    ws.send(json.dumps({"op": "subscribe", "prefixes": [f"p{i}." for i in range(65)]}))
    ws.send(json.dumps({"op": "ping"}))
    results["too_many_prefixes"] = [frame_of(*ws.recv_data(control_frame=True)) for _ in range(2)]
    ws.close()
    # Canonically equivalent spellings ("\u00e9" or "e\u0301") are different bytes, so different
    # prefixes at the broker: each counts against max_client_prefixes (64).
    spellings = ["".join(letters) + "." for letters in itertools.product(["\u00e9", "e\u0301"], repeat=7)][:65]
    ws = websocket.create_connection(ws_url(port), timeout=10)
    ws.send(json.dumps({"op": "subscribe", "prefixes": spellings[:64]}))
    held = [frame_of(*ws.recv_data(control_frame=True)) for _ in range(64)]
    ws.send(json.dumps({"op": "subscribe", "prefixes": spellings[64:]}))
    results["equivalent_spellings"] = {
        "subscribed": sum(1 for frame in held if frame.get("message", {}).get("type") == "subscribed"),
        "next": frame_of(*ws.recv_data(control_frame=True)),
    }
    ws.close()
    try:
        websocket.create_connection(ws_url(port), timeout=10, origin="https://evil.example")
        results["bad_origin"] = {"status": 101}
    except websocket.WebSocketBadStatusException as error:
        results["bad_origin"] = {"status": error.status_code}
    try:
        websocket.create_connection(ws_url(port), timeout=10, origin="https://good.example")
        results["good_origin"] = {"status": 101}
    except websocket.WebSocketBadStatusException as error:
        results["good_origin"] = {"status": error.status_code}
    # A close with a code that must not be sent (1005: "no code", 1004 and 2000 unassigned,
    # 5000 out of range) is a protocol error (1002); an assigned code or a client's own
    # (4000-4999: the application's) is echoed.
    for name, code in (("reserved_close", 1005), ("unassigned_close", 1004), ("unassigned_range_close", 2000),
                       ("out_of_range_close", 5000), ("server_error_close", 1011), ("own_close", 4321)):
        ws = websocket.create_connection(ws_url(port), timeout=10)
        ws.send(code.to_bytes(2, "big"), opcode=websocket.ABNF.OPCODE_CLOSE)
        results[name] = frame_of(*ws.recv_data(control_frame=True))
        ws.shutdown()
    print(json.dumps(results), flush=True)


def ws_fragments(port):
    """Messages in fragments (RFC 6455 5.4), each on a fresh connection: a good one (answered),
    then bad ones: what the server answered, and whether it hung up."""
    text, more = websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_CONT

    def fragments(*parts):
        def send(ws):
            for opcode, fin, data in parts:
                ws.send_frame(websocket.ABNF.create_frame(data, opcode, fin))
        return send

    results = {}
    ws = websocket.create_connection(ws_url(port), timeout=10)
    fragments((text, 0, '{"op":'), (more, 0, ' "pi'), (more, 1, 'ng"}'))(ws)
    results["fragmented_ping"] = frame_of(*ws.recv_data(control_frame=True))
    ws.close()
    # Two fragments of 40 KiB: each under max_frame (64 KiB), the message over it.
    results["too_large"] = close_after(port, fragments((text, 0, "x" * 40960), (more, 1, "x" * 40960)), timeout=5)
    results["too_many"] = close_after(
        port, fragments((text, 0, " "), *[(more, 0, " ")] * 69, (more, 1, "{}")), timeout=5)
    results["new_message_inside"] = close_after(
        port, fragments((text, 0, '{"op":'), (text, 1, '{"op":"ping"}')), timeout=5)
    results["continuation_alone"] = close_after(port, fragments((more, 1, '{"op":"ping"}')), timeout=5)
    # Begun and never finished: closed after 10 s, whatever else the client does.
    started = time.monotonic()
    results["unfinished"] = close_after(port, fragments((text, 0, '{"op":')), timeout=30)
    results["unfinished"]["after_s"] = round(time.monotonic() - started, 1)
    print(json.dumps(results), flush=True)


def ws_fragments_behind_subscribe(port, prefixes):
    """A message begun in fragments whose end waits unread while the gateway reads nothing: a
    subscribe of PREFIXES new prefixes (confirmed as upstream_subscriptions_per_s lets them
    through), 64 pings behind it (past which the gateway stops reading), and the first fragment
    of a ping, in one write; its last fragment a second later. Prints what came back, in
    order, and when the last reply came."""
    text, more = websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_CONT
    ws = websocket.create_connection(ws_url(port), timeout=60)
    subscribe = json.dumps({"op": "subscribe", "prefixes": [f"paused.{n}." for n in range(prefixes)]})
    frames = [websocket.ABNF.create_frame(subscribe, text)]
    frames += [websocket.ABNF.create_frame('{"op":"ping"}', text) for _ in range(64)]
    frames.append(websocket.ABNF.create_frame('{"op":', text, 0))
    started = time.monotonic()
    ws.sock.sendall(b"".join(frame.format() for frame in frames))
    time.sleep(1)
    ws.send_frame(websocket.ABNF.create_frame(' "ping"}', more, 1))
    replies = {"subscribed": 0, "pong": 0}
    ending = None
    while replies["pong"] < 65:
        try:
            opcode, data = ws.recv_data(control_frame=True)
        except (websocket.WebSocketException, OSError) as error:
            ending = {"kind": "error", "error": repr(error)}
            break
        if is_ping_or_pong(opcode):
            continue
        frame = frame_of(opcode, data)
        if frame["kind"] != "text":
            ending = frame
            break
        kind = frame["message"].get("type")
        replies[kind] = replies.get(kind, 0) + 1
    print(json.dumps({"replies": replies, "ending": ending,
                      "after_s": round(time.monotonic() - started, 1)}), flush=True)
    ws.close()


def raw_frame(opcode, payload, masked=True, rsv=0, fin=True):
    """A frame of up to 65,535 bytes, byte for byte, for what websocket-client refuses to
    send: unmasked, with RSV bits, with a reserved opcode, a control frame fragmented or over
    125 bytes."""
    length = bytes([len(payload)]) if len(payload) <= 125 else bytes([126]) + len(payload).to_bytes(2, "big")
    first = bytes([(0x80 if fin else 0) | rsv << 4 | opcode]) + bytes([(0x80 if masked else 0) | length[0]]) + length[1:]
    if not masked:
        return first + payload
    mask = os.urandom(4)
    return first + mask + bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))


def ws_violations(port):
    """Frames that break RFC 6455, each on a fresh connection and followed by a ping request
    (answered if the frame was let through): the server's close frame, and whether it hung up."""
    ping = b'{"op":"ping"}'
    cases = {
        "unmasked": raw_frame(0x1, ping, masked=False),
        "rsv1": raw_frame(0x1, ping, rsv=4),
        "rsv3": raw_frame(0x1, ping, rsv=1),
        "opcode_3": raw_frame(0x3, b"x"),
        "opcode_11": raw_frame(0xB, b"x"),
        "close_one_byte": raw_frame(0x8, b"\x03"),
        "close_reason_not_utf8": raw_frame(0x8, b"\x03\xe8\xff\xfe"),
        "ping_fragmented": raw_frame(0x9, b"x", fin=False),
        "ping_over_125": raw_frame(0x9, b"x" * 126),
    }
    results = {}
    for name, frame in cases.items():
        results[name] = close_after(port, lambda ws: ws.sock.sendall(frame + raw_frame(0x1, ping)), timeout=5)
    print(json.dumps(results), flush=True)


def read_response(connection, received=b""):
    """One response off a raw connection, after what was `received` of it already: status,
    headers (lowercased names), JSON error code; and what came after it. A 101 has no body."""
    while b"\r\n\r\n" not in received:
        chunk = connection.recv(65536)
        if not chunk:
            return {"status": None, "received": received.decode(errors="replace")}, b""
        received += chunk
    head, _, rest = received.partition(b"\r\n\r\n")
    lines = head.decode(errors="replace").split("\r\n")
    headers = {name.strip().lower(): value.strip()
               for name, _, value in (line.partition(":") for line in lines[1:])}
    status = int(lines[0].split(" ")[1])
    if status == 101:
        return {"status": status, "headers": headers}, rest
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        rest += connection.recv(65536)
    body, rest = rest[:length], rest[length:]
    code = json.loads(body).get("error", {}).get("code") if body else None
    return {"status": status, "headers": headers, "code": code}, rest


def ws_handshakes(port):
    """Upgrade requests that cannot be taken, each on a fresh connection: what each got (and for
    an upgrade sent as the second request on a kept-alive connection, both responses)."""
    def upgrade(method="GET", version="1.1", ws_version="13", key="dGhlIHNhbXBsZSBub25jZQ=="):
        request = (f"{method} /ws HTTP/{version}\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                   f"Connection: Upgrade\r\nSec-WebSocket-Version: {ws_version}\r\n")
        if key is not None:
            request += f"Sec-WebSocket-Key: {key}\r\n"
        return (request + "\r\n").encode()

    cases = {
        "post": (upgrade(method="POST"), 1),
        "http_1_0": (upgrade(version="1.0"), 1),
        "short_key": (upgrade(key="c2hvcnQ="), 1),
        "key_not_base64": (upgrade(key="!!!!!!!!!!!!!!!!!!!!!!=="), 1),
        "no_key": (upgrade(key=None), 1),
        "version_8": (upgrade(ws_version="8"), 1),
        "second_request": (f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode() + upgrade(), 2),
    }
    results = {}
    for name, (request, count) in cases.items():
        connection = socket.create_connection(("127.0.0.1", port), timeout=10)
        connection.sendall(request)
        responses, rest = [], b""
        try:
            for _ in range(count):
                response, rest = read_response(connection, rest)
                responses.append(response)
        except socket.timeout:
            responses.append({"status": "timeout"})
        results[name] = responses[-1]
        connection.close()
    print(json.dumps(results), flush=True)


def expect_continue(port, body, declared_length, path="/publish", origin=None):
    """POST to path (/publish) with Expect: 100-continue, as curl sends it: the headers, then
    the body only once the server answered (5 s at most). Prints the interim response (or
    "timeout"), and the final one."""
    connection = socket.create_connection(("127.0.0.1", port), timeout=5)
    extra = f"Origin: {origin}\r\n" if origin else ""
    connection.sendall((f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
                        f"{extra}Content-Length: {declared_length}\r\nExpect: 100-continue\r\n\r\n").encode())
    try:
        first, rest = read_response(connection)
    except socket.timeout:
        print(json.dumps({"first": "timeout"}), flush=True)
        return
    final = first
    if first["status"] == 100:
        connection.sendall(body.encode())
        final, rest = read_response(connection, rest)
    # After a refusal: how long until the server ends the stream (it says Connection: close).
    ended_after = None
    if first["status"] != 100:
        started = time.monotonic()
        try:
            while connection.recv(4096):
                pass
            ended_after = time.monotonic() - started
        except socket.timeout:
            pass
    print(json.dumps({"first": first, "final": final, "ended_after_s": ended_after}), flush=True)
    connection.close()


def ws_slow(port, prefix, ready_file, go_file, seconds):
    """One client that subscribes and then does not read (with a tiny receive buffer) until
    go_file exists (`seconds` at most); then prints how its connection ended."""
    ws = websocket.create_connection(
        ws_url(port), timeout=30, sockopt=((socket.SOL_SOCKET, socket.SO_RCVBUF, 4096),))
    ws.send(json.dumps({"op": "subscribe", "prefix": prefix}))
    frame_of(*ws.recv_data(control_frame=True))
    open(ready_file, "w").close()
    deadline = time.monotonic() + seconds
    while not os.path.exists(go_file) and time.monotonic() < deadline:
        time.sleep(0.05)
    # Now read what is there: messages, then a close frame 1008 or the end of the stream.
    ending = {"kind": "open"}
    messages = 0
    try:
        while True:
            frame = frame_of(*ws.recv_data(control_frame=True))
            if frame["kind"] == "close":
                ending = frame
                break
            messages += 1
    except (websocket.WebSocketConnectionClosedException, ConnectionResetError, BrokenPipeError):
        ending = {"kind": "eof"}
    except websocket.WebSocketTimeoutException:
        ending = {"kind": "open"}
    print(json.dumps({"ending": ending, "messages_read": messages}), flush=True)


def ws_liveness(port, seconds, pings_wanted=3):
    """Two clients: one that never answers the server's pings (a raw socket that reads but does
    not reply) and one that does (websocket-client answers pings by itself). The answering one
    runs until it has answered `pings_wanted` pings and the silent one has been closed, or for
    `seconds` at most, however slowly the machine goes. Prints how each one fared."""
    import base64
    import os
    import threading

    silent = {}

    def run_silent():
        raw = socket.create_connection(("127.0.0.1", port), timeout=seconds + 10)
        key = base64.b64encode(os.urandom(16)).decode()
        raw.sendall((f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                     f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        started = time.monotonic()
        data = b""
        while True:
            chunk = raw.recv(4096)
            if not chunk:
                break
            data += chunk
        silent["eof_after_s"] = round(time.monotonic() - started, 1)
        head, _, frames = data.partition(b"\r\n\r\n")
        silent["status_line"] = head.split(b"\r\n")[0].decode()
        pings, close = 0, None
        while len(frames) >= 2:
            opcode, length = frames[0] & 0x0F, frames[1] & 0x7F
            body, frames = frames[2:2 + length], frames[2 + length:]
            if opcode == 0x9:
                pings += 1
            elif opcode == 0x8:
                close = {"code": int.from_bytes(body[:2], "big"), "reason": body[2:].decode()}
        silent["pings"], silent["close"] = pings, close

    thread = threading.Thread(target=run_silent)
    thread.start()
    ws = websocket.create_connection(ws_url(port), timeout=1)
    deadline = time.monotonic() + seconds
    pings_answered = 0
    while time.monotonic() < deadline and (pings_answered < pings_wanted or thread.is_alive()):
        try:
            opcode, _ = ws.recv_data(control_frame=True)
            if opcode == websocket.ABNF.OPCODE_PING:
                ws.pong(b"zpub")
                pings_answered += 1
        except websocket.WebSocketTimeoutException:
            pass
    ws.settimeout(10)
    ws.send(json.dumps({"op": "ping"}))
    # The server's own pings may come first: answer them and read on to the reply.
    while True:
        opcode, data = ws.recv_data(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_PING:
            ws.pong(data)
            continue
        answered = frame_of(opcode, data)
        break
    ws.close()
    thread.join()
    print(json.dumps({"silent": silent, "answering": {"pings": pings_answered, "reply": answered}}), flush=True)


def sse(port, query, count, last_event_id=None, ready_file=None, until_topic=None):
    """Reads `count` events from /events (or until one on `until_topic`), or prints the HTTP
    error, as JSON lines. The stream's `subscribed` event is printed, not counted, and writes
    ready_file."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    headers = {"Accept": "text/event-stream"}
    if last_event_id:
        headers["Last-Event-ID"] = last_event_id
    connection.request("GET", "/events" + query, headers=headers)
    response = connection.getresponse()
    print(json.dumps({"status": response.status, "content_type": response.getheader("Content-Type")}), flush=True)
    if response.status != 200:
        print(json.dumps({"body": json.loads(response.read())}), flush=True)
        return
    event = {}
    received = 0
    while received < count:
        line = response.readline().decode("utf-8")
        if line == "":
            print(json.dumps({"eof": True}), flush=True)
            return
        line = line.rstrip("\n")
        if line == "":
            if event.get("event") == "subscribed":
                # The broker forwards the stream's prefixes: what is published now arrives.
                print(json.dumps({"subscribed": json.loads(event["data"])}), flush=True)
                if ready_file:
                    open(ready_file, "w").close()
                # A reader that stops reading until the test says so (ZPUB_TEST_SSE_HOLD names
                # the file whose creation says so): what comes meanwhile queues in the gateway.
                hold = os.environ.get("ZPUB_TEST_SSE_HOLD")
                while hold and not os.path.exists(hold):
                    time.sleep(0.02)
            elif "data" in event:
                event["data"] = json.loads(event["data"])
                event["received_at"] = time.time()
                print(json.dumps(event), flush=True)
                received += 1
                if until_topic and event["data"].get("topic") == until_topic:
                    return
            event = {}
        elif line.startswith(":"):
            continue
        else:
            name, _, value = line.partition(":")
            event[name] = value[1:] if value.startswith(" ") else value


def metrics(port):
    from prometheus_client.parser import text_string_to_metric_families

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", "/metrics")
    response = connection.getresponse()
    text = response.read().decode("utf-8")
    families = {}
    for family in text_string_to_metric_families(text):
        families[family.name] = {
            "type": family.type,
            "samples": [{"name": s.name, "labels": s.labels, "value": s.value} for s in family.samples],
        }
    print(json.dumps({"content_type": response.getheader("Content-Type"), "families": families}), flush=True)


def pipeline_burst(port, connections, burst_bytes, hold_seconds):
    """Opens CONNECTIONS connections with a tiny receive buffer, sends each one burst of
    pipelined GET / requests (as much of BURST_BYTES as the server takes), never reads a reply,
    and holds them HOLD_SECONDS: prints how many bytes of requests the server took."""
    import socket
    import time

    request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    burst = request * (burst_bytes // len(request))
    sockets, taken = [], 0
    for _ in range(connections):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", port))
        s.setblocking(False)
        sockets.append(s)
    # Each burst goes out in one go, as far as the kernel takes it; then again once, a little
    # later, so that the server's reads of it come in large buffers.
    for _ in range(2):
        for s in sockets:
            try:
                taken += s.send(burst)
            except (BlockingIOError, ConnectionError):
                pass
        time.sleep(0.5)
    time.sleep(hold_seconds)
    print(json.dumps({"taken": taken}), flush=True)
    for s in sockets:
        s.close()


def pipeline_flood(port, seconds):
    """Sends pipelined GET / requests for SECONDS and never reads a reply (with a tiny receive
    buffer): prints how many were sent and the size of one reply."""
    import socket
    import time

    one = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    one.request("GET", "/")
    reply_bytes = len(one.getresponse().read())
    one.close()
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    s.setblocking(False)
    request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    burst = request * 256
    sent, pending, deadline = 0, b"", time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not pending:
            pending = burst
        try:
            n = s.send(pending)
            sent += n
            pending = pending[n:]
        except BlockingIOError:
            time.sleep(0.005)  # the kernel's buffers are full: the server stopped reading
        except OSError:
            break  # the server hung up
    print(json.dumps({"requests": sent // len(request), "reply_bytes": reply_bytes}), flush=True)
    s.close()


def hog(port, kind, connections, seconds, probes):
    """CONNECTIONS clients that each write batches of pipelined requests (KIND "http": GET
    /nope; "ws": {"op":"ping"} frames on a WebSocket) as fast as the gateway answers them, and
    read every answer, until PROBES new connections, one every 50 ms, have each asked GET
    /healthz (SECONDS at most). Prints the answers the hogs got, each probe's wait in
    milliseconds, and how many probes were answered while every hog was still at it."""
    import base64
    import socket
    import threading
    import time

    stop_at = [time.monotonic() + seconds]
    answered = [0] * connections
    failures = []

    def one_hog(index):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            if kind == "ws":
                key = base64.b64encode(os.urandom(16)).decode()
                s.sendall(
                    f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: Upgrade\r\n"
                    f"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n\r\n".encode())
                head = b""
                while b"\r\n\r\n" not in head:
                    head += s.recv(4096)
                assert head.startswith(b"HTTP/1.1 101"), head[:200]
                batch = raw_frame(0x1, b'{"op":"ping"}') * 2000
                marker = b'"pong"'
            else:
                batch = b"GET /nope HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" * 2000
                marker = b"HTTP/1.1 404"
            sent = [0]

            def read():
                tail = b""
                try:
                    while time.monotonic() < stop_at[0] or answered[index] < sent[0]:
                        chunk = s.recv(1 << 16)
                        if not chunk:
                            failures.append("the gateway closed a hog's connection")
                            return
                        data = tail + chunk
                        answered[index] += data.count(marker)
                        tail = data[-(len(marker) - 1):]
                except OSError as error:
                    failures.append(f"a hog's answers stopped: {error!r}")

            # Written on while fewer than two batches wait for their answers, which are read
            # by a thread of their own: a writer that stopped to read would let the gateway
            # rest between batches.
            reader = None
            while time.monotonic() < stop_at[0]:
                if sent[0] - answered[index] >= 4000:
                    time.sleep(0.001)
                    continue
                sent[0] += 2000
                s.sendall(batch)
                if reader is None:
                    reader = threading.Thread(target=read)
                    reader.start()
            reader.join()
            s.close()
        except Exception as error:  # noqa: BLE001 - reported, and the test fails on it
            failures.append(repr(error))

    threads = [threading.Thread(target=one_hog, args=(index,)) for index in range(connections)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)  # the hogs are at it
    waits = []
    at_first_probe = list(answered)
    for _ in range(probes):
        if time.monotonic() >= stop_at[0]:
            break
        started = time.monotonic()
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request("GET", "/healthz")
        status = connection.getresponse().status
        waits.append(round((time.monotonic() - started) * 1000, 1))
        connection.close()
        if status != 200:
            failures.append(f"/healthz answered {status}")
        time.sleep(0.05)
    # Each hog's answers while the probes were asked: all of them were served meanwhile.
    during = [now - then for now, then in zip(answered, at_first_probe)]
    stop_at[0] = time.monotonic()
    for thread in threads:
        thread.join()
    print(json.dumps({"answered": sum(answered), "probe_ms": waits, "during": during, "failures": failures}), flush=True)


if __name__ == "__main__":
    command, port, *rest = sys.argv[1:]
    port = int(port)
    if command == "ws-sub":
        prefixes = json.loads(rest[0])
        count = int(rest[1])
        ready = rest[2] if len(rest) > 2 and rest[2] != "-" else None
        publish = json.loads(rest[3]) if len(rest) > 3 and rest[3] != "-" else None
        token = rest[4] if len(rest) > 4 and rest[4] != "-" else None
        progress = rest[5] if len(rest) > 5 else None
        ws_subscribe(port, prefixes, count, ready, publish, token, progress)
    elif command == "ws-since":
        ws_since(port, json.loads(rest[0]), rest[1], rest[2] if len(rest) > 2 and rest[2] != "-" else None,
                 rest[3] if len(rest) > 3 else "")
    elif command == "ws-behind-flood":
        ws_behind_flood(port, rest[0], rest[1], int(rest[2]), *rest[3:6])
    elif command == "sse-behind-flood":
        sse_behind_flood(port, rest[0], rest[1], int(rest[2]), rest[3], rest[4])
    elif command == "ws-requests":
        ws_requests(port, json.loads(rest[0]), rest[1], rest[2], rest[3], *rest[4:5])
    elif command == "pipeline-burst":
        pipeline_burst(port, int(rest[0]), int(rest[1]), float(rest[2]))
    elif command == "ws-publish-reply":
        ws_publish_reply(port, rest[0], float(rest[1]))
    elif command == "ws-publish-one":
        ws_publish_one(port, rest[0], int(rest[1]))
    elif command == "ws-publish-until-busy":
        ws_publish_until_busy(port, rest[0], int(rest[1]))
    elif command == "healthz-burst":
        healthz_burst(port, int(rest[0]))
    elif command == "ws-bad":
        ws_bad_requests(port)
    elif command == "ws-fragments":
        ws_fragments(port)
    elif command == "ws-fragments-behind-subscribe":
        ws_fragments_behind_subscribe(port, int(rest[0]))
    elif command == "ws-violations":
        ws_violations(port)
    elif command == "ws-handshakes":
        ws_handshakes(port)
    elif command == "expect-continue":
        expect_continue(port, rest[0], int(rest[1]) if len(rest) > 1 and rest[1] else len(rest[0].encode()),
                        *rest[2:4])
    elif command == "ws-slow":
        ws_slow(port, rest[0], rest[1], rest[2], float(rest[3]))
    elif command == "sse":
        sse(port, rest[0], int(rest[1]), rest[2] if len(rest) > 2 and rest[2] != "-" else None,
            rest[3] if len(rest) > 3 else None, rest[4] if len(rest) > 4 else None)
    elif command == "metrics":
        metrics(port)
    elif command == "hog":
        hog(port, rest[0], int(rest[1]), float(rest[2]), int(rest[3]))
    elif command == "pipeline-flood":
        pipeline_flood(port, float(rest[0]))
    elif command == "ws-liveness":
        ws_liveness(port, float(rest[0]))
    else:
        sys.exit(f"unknown command {command}")
