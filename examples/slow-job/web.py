#!/usr/bin/python3
"""The web tier: an HTTP server that shows the slow job's results as they arrive, and is never
blocked by the job or by the broker.

Results are received on a SUB socket in the same event loop as the HTTP handler (pyzmq's
zmq.asyncio): waiting for the next result yields to the loop, so every request is answered at
once with the results so far, while the job is still working.

Run: python3 web.py [port]   then: curl http://127.0.0.1:8080/
"""
import asyncio
import json
import os
import sys

import zmq
import zmq.asyncio

endpoint = os.environ.get("ZPUB_XPUB", "tcp://127.0.0.1:5556")
port = int(sys.argv[1]) if len(sys.argv) > 1 else 8080
results = []


async def receive_results():
    sub = zmq.asyncio.Context().socket(zmq.SUB)
    sub.connect(endpoint)
    sub.setsockopt(zmq.SUBSCRIBE, b"jobs.")
    while True:
        topic, body = await sub.recv_multipart()  # yields to the event loop until one comes
        results.append(json.loads(body))


async def answer(reader, writer):
    await reader.readuntil(b"\r\n\r\n")  # any request, any path: the results so far
    body = json.dumps({"results": results}).encode()
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
    writer.write(b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
    await writer.drain()
    writer.close()


async def main():
    server = await asyncio.start_server(answer, "127.0.0.1", port)
    print(f"serving the results on http://127.0.0.1:{port}/", flush=True)
    await asyncio.gather(server.serve_forever(), receive_results())


try:
    asyncio.run(main())
except KeyboardInterrupt:
    pass
