#!/usr/bin/python3
"""Whether REQ clients asking one request after another ever lose a control reply.

usage: scripts/control-lockstep.py [ZPUBD] [CLIENTS] [ROUNDS] [REQUESTS]
       (defaults: .build/debug/zpubd, 3 clients, 40 rounds, 1,500 requests a round)

Each client is a process of its own that, round after round, starts ZPUBD on ipc endpoints in a
temporary directory and sends it REQUESTS malformed control requests in lockstep (the five
kinds of FaultTests' flood: random bytes, 10,000 bytes, two frames, invalid UTF-8, an unknown
command), each as soon as the last is answered. A request unanswered for 5 s stops that client:
it prints the request's number, zpubd's control counters (from a STATS on a new connection)
and zpubd's log. Run it beside two `yes` processes: the loss needs the control thread set aside
between a reply and its next read.

Measured on 2026-12-06 (debug build, 2-core VM, beside two `yes`): before zpubd took in libzmq's
read reports before each reply (docs/control-protocol.md, "Replies are never lost to a stale
count") each client lost a reply within 1 to 25 rounds, always at a request number divisible
by 8 (this script, 3 clients: all three within 9 rounds); after, 3 clients x 220 rounds (about
a million requests) lost none.
"""
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile

import zmq

from measure_common import answers_ping


def request_frames(index):
    kind = index % 5
    if kind == 0:
        return [os.urandom(random.randrange(300))]
    if kind == 1:
        return [b"A" * 10_000]
    if kind == 2:
        return [b"STATS", b"x"]
    if kind == 3:
        return [b"\xc3\x28"]
    return [b"NOPE %d" % index]


def wait_until_ready(context, control):
    if not answers_ping(context, control):
        sys.exit("zpubd did not answer PING within 15 s")


def one_client(zpubd, rounds, requests):
    context = zmq.Context()
    for round_number in range(rounds):
        directory = tempfile.mkdtemp(prefix="zpub-lockstep-")
        endpoints = {role: f"ipc://{directory}/{role}.sock" for role in ("pull", "xpub", "xsub", "control")}
        log_path = os.path.join(directory, "zpubd.log")
        with open(log_path, "w") as log:
            arguments = [zpubd] + [item for role, endpoint in endpoints.items() for item in (f"--{role}", endpoint)]
            daemon = subprocess.Popen(arguments, stdout=log, stderr=log)
        try:
            wait_until_ready(context, endpoints["control"])
            client = context.socket(zmq.REQ)
            client.linger = 0
            client.connect(endpoints["control"])
            for index in range(requests):
                client.send_multipart(request_frames(index))
                if not client.poll(5_000):
                    stats = context.socket(zmq.REQ)
                    stats.linger = 0
                    stats.connect(endpoints["control"])
                    stats.send(b"STATS")
                    counters = json.loads(stats.recv())["sockets"]["control"] if stats.poll(3_000) else "no reply"
                    print(f"pid {os.getpid()} round {round_number}: request {index} got no reply in 5 s")
                    print(f"  control counters: {json.dumps(counters)}")
                    print("  zpubd's log:\n" + open(log_path).read())
                    return 1
                client.recv_multipart()
            client.close()
        finally:
            daemon.kill()
            daemon.wait()
            shutil.rmtree(directory, ignore_errors=True)
    print(f"pid {os.getpid()}: {rounds} rounds of {requests} requests, every one answered")
    return 0


def main():
    zpubd = sys.argv[1] if len(sys.argv) > 1 else ".build/debug/zpubd"
    clients = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 40
    requests = int(sys.argv[4]) if len(sys.argv) > 4 else 1_500
    children = []
    for _ in range(clients):
        pid = os.fork()
        if pid == 0:
            os._exit(one_client(zpubd, rounds, requests))
        children.append(pid)
    failed = sum(1 for pid in children if os.waitpid(pid, 0)[1] != 0)
    print(f"{clients - failed} of {clients} clients lost no reply")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
