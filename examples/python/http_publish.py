#!/usr/bin/python3
"""Publishes a batch of messages through zpubd's HTTP gateway with the standard library only
(urllib): no ZeroMQ binding needed. Topics must be under [http] publish_prefixes.

Run: python3 http_publish.py TOPIC TEXT...   (one message per TEXT, in one request)
Environment: ZPUB_HTTP (http://127.0.0.1:8080), ZPUB_TOKEN (if the prefix needs one)
"""
import json
import os
import sys
import urllib.error
import urllib.request

url = os.environ.get("ZPUB_HTTP", "http://127.0.0.1:8080") + "/publish"
if len(sys.argv) < 2:
    sys.exit("usage: python3 http_publish.py TOPIC TEXT...")
topic, texts = sys.argv[1], sys.argv[2:]
body = json.dumps({"messages": [{"topic": topic, "payload": text} for text in texts]}).encode()
request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
if os.environ.get("ZPUB_TOKEN"):
    request.add_header("Authorization", "Bearer " + os.environ["ZPUB_TOKEN"])
try:
    with urllib.request.urlopen(request, timeout=10) as response:
        print(response.read().decode().strip())
except urllib.error.HTTPError as error:
    # The gateway explains every refusal: {"error": {"code": ..., "message": ...}}
    sys.exit(f"zpubd refused ({error.code}): {error.read().decode().strip()}")
except urllib.error.URLError as error:
    sys.exit(f"cannot reach zpubd at {url}: {error.reason} (is its [http] gateway on? ZPUB_HTTP)")
