"""Independent clients for the gateway's JWT credentials and TLS (docs/http.md): tokens signed by
PyJWT (Debian's python3-jwt), HTTPS and WSS through Python's ssl with the test's own CA file,
and a pyzmq subscriber.

usage:
  gateway_credentials.py jwt ALG KEYFILE SUB EXP_IN SUBSCRIBE PUBLISH
      prints a token: ALG HS256 (KEYFILE holds the secret), RS256 or EdDSA (a private key PEM);
      EXP_IN seconds from now ("none": no exp); SUBSCRIBE and PUBLISH JSON arrays of prefixes.
  gateway_credentials.py https-get PORT PATH CAFILE [TOKEN]
      prints {"status", "body", "cert_sha256"}; the certificate is checked against CAFILE.
  gateway_credentials.py wss-sub PORT CAFILE PREFIX COUNT READY
      a WebSocket over TLS: prints {"cert_sha256"}, then COUNT messages under PREFIX (JSON lines);
      READY is created once the subscription is acknowledged.
  gateway_credentials.py ws-expiry PORT TOKEN REFRESH READY
      connects with ?access_token=TOKEN, subscribes to "a."; with REFRESH (not "-") sends
      {"op":"refresh"} and waits for "refreshed"; creates READY; then prints every frame until the
      first message or the close, which it prints as {"close", "reason", "after"} (seconds since
      connecting).
  gateway_credentials.py ws-refresh-behind PORT TOKEN REFRESH PREFIX
      connects with ?access_token=TOKEN, sends a subscribe of PREFIX and at once a refresh with
      REFRESH, then prints every text frame with "after" (seconds since connecting) until the
      `subscribed`, or the close ({"close", "reason", "after"}).
  gateway_credentials.py sse-hold PORT CAFILE PREFIX READY
      an SSE stream over TLS: creates READY once the response's headers came, reads until the
      server ends the connection, prints {"eof": true, "goodbye"} (whether an `error` event
      `stopping` came), then keeps its socket open, without a close_notify, until it is killed.
  gateway_credentials.py zmq-sub XPUB PREFIX COUNT READY
      a pyzmq SUB: creates READY once subscribed, prints COUNT messages as JSON lines.
"""
import hashlib
import http.client
import json
import os
import socket
import ssl
import struct
import sys
import time

import jwt


def make_token(alg, key_file, subject, exp_in, subscribe, publish):
    claims = {"sub": subject, "subscribe": json.loads(subscribe), "publish": json.loads(publish)}
    if exp_in != "none":
        claims["exp"] = int(time.time() + float(exp_in))
    key = open(key_file, "rb").read()
    if alg == "HS256":
        key = key.strip()
    print(jwt.encode(claims, key, algorithm=alg))


def tls_context(ca_file):
    context = ssl.create_default_context(cafile=ca_file)
    context.check_hostname = False  # the certificate names 127.0.0.1 as an IP address
    return context


def https_get(port, path, ca_file, token=None):
    connection = http.client.HTTPSConnection("127.0.0.1", int(port), context=tls_context(ca_file), timeout=10)
    headers = {"Authorization": "Bearer " + token} if token else {}
    connection.request("GET", path, headers=headers)
    response = connection.getresponse()
    certificate = connection.sock.getpeercert(binary_form=True)
    # An event stream never ends: its first bytes are enough.
    body = response.read(200) if response.getheader("Content-Type", "").startswith("text/event-stream") \
        else response.read()
    print(json.dumps({"status": response.status, "body": body.decode(errors="replace"),
                      "cert_sha256": hashlib.sha256(certificate).hexdigest()}), flush=True)


def wss_sub(port, ca_file, prefix, count, ready_file):
    import websocket
    ws = websocket.create_connection(
        f"wss://127.0.0.1:{port}/ws", timeout=30,
        sslopt={"ca_certs": ca_file, "check_hostname": False, "cert_reqs": ssl.CERT_REQUIRED})
    certificate = ws.sock.getpeercert(binary_form=True)
    print(json.dumps({"cert_sha256": hashlib.sha256(certificate).hexdigest()}), flush=True)
    ws.send(json.dumps({"op": "subscribe", "prefix": prefix}))
    received = 0
    while received < int(count):
        message = json.loads(ws.recv())
        if message.get("type") == "subscribed":
            open(ready_file, "w").close()
        elif message.get("type") == "message":
            received += 1
            print(json.dumps(message), flush=True)
    ws.close()


def ws_expiry(port, token, refresh, ready_file):
    import websocket
    started = time.monotonic()
    ws = websocket.create_connection(f"ws://127.0.0.1:{port}/ws?access_token={token}", timeout=60)
    ws.send(json.dumps({"op": "subscribe", "prefix": "a."}))
    waiting_for = "subscribed"
    while True:
        opcode, data = ws.recv_data(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else None
            print(json.dumps({"close": code, "reason": data[2:].decode(errors="replace"),
                              "after": round(time.monotonic() - started, 2)}), flush=True)
            return
        if opcode != websocket.ABNF.OPCODE_TEXT:
            continue
        message = json.loads(data)
        print(json.dumps(message), flush=True)
        if message.get("type") == waiting_for == "subscribed":
            if refresh != "-":
                ws.send(json.dumps({"op": "refresh", "token": refresh}))
                waiting_for = "refreshed"
                continue
            waiting_for = None
            open(ready_file, "w").close()
        elif message.get("type") == waiting_for == "refreshed":
            waiting_for = None
            open(ready_file, "w").close()
        elif message.get("type") == "message":
            return


def ws_refresh_behind(port, token, refresh, prefix):
    import websocket
    started = time.monotonic()
    ws = websocket.create_connection(f"ws://127.0.0.1:{port}/ws?access_token={token}", timeout=60)
    ws.send(json.dumps({"op": "subscribe", "prefix": prefix}))
    ws.send(json.dumps({"op": "refresh", "token": refresh}))
    while True:
        opcode, data = ws.recv_data(control_frame=True)
        after = round(time.monotonic() - started, 2)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else None
            print(json.dumps({"close": code, "reason": data[2:].decode(errors="replace"), "after": after}), flush=True)
            return
        if opcode != websocket.ABNF.OPCODE_TEXT:
            continue
        message = json.loads(data)
        message["after"] = after
        print(json.dumps(message), flush=True)
        if message.get("type") == "subscribed":
            return


def sse_hold(port, ca_file, prefix, ready_file):
    raw = socket.create_connection(("127.0.0.1", int(port)), timeout=60)
    tls = tls_context(ca_file).wrap_socket(raw)
    tls.sendall(("GET /events?prefix=%s HTTP/1.1\r\nHost: 127.0.0.1:%s\r\n\r\n" % (prefix, port)).encode())
    received = b""
    while b"\r\n\r\n" not in received:
        received += tls.recv(4096)
    open(ready_file, "w").close()
    while True:
        try:
            chunk = tls.recv(4096)
        except (ssl.SSLError, OSError):
            break
        if not chunk:
            break
        received += chunk
    print(json.dumps({"eof": True, "goodbye": b"stopping" in received}), flush=True)
    time.sleep(120)


def zmq_sub(xpub, prefix, count, ready_file):
    import zmq
    context = zmq.Context()
    sub = context.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.connect(xpub)
    sub.setsockopt(zmq.SUBSCRIBE, prefix.encode())
    open(ready_file, "w").close()
    for _ in range(int(count)):
        frames = sub.recv_multipart()
        print(json.dumps([f.decode(errors="replace") for f in frames]), flush=True)
    context.destroy()


if __name__ == "__main__":
    command, arguments = sys.argv[1], sys.argv[2:]
    {"jwt": make_token, "https-get": https_get, "wss-sub": wss_sub, "ws-expiry": ws_expiry,
     "ws-refresh-behind": ws_refresh_behind, "sse-hold": sse_hold, "zmq-sub": zmq_sub}[command](*arguments)
