#!/usr/bin/python3
"""What keeping history costs the disk at a low rate: bytes zpubd writes per message.

Runs the release zpubd (after `make release`) with history on disk for one prefix, sends COUNT
messages of 32 bytes at RATE a second from a PUSH socket, waits until history has written
them and synced, and prints what zpubd wrote meanwhile (`wchar` from /proc/PID/io: the log,
the checkpoints into the database, everything) per message, and the writer's transactions
(STATS history.commits).

Usage: scripts/history-write-bytes.py [COUNT] [RATE]   (defaults 200 and 50)
"""
import json
import os
import subprocess
import sys
import tempfile
import time

import zmq

from measure_common import free_port

HERE = os.path.dirname(os.path.abspath(__file__))
ZPUBD = os.path.join(HERE, "..", ".build", "release", "zpubd")


def written_bytes(pid):
    with open(f"/proc/{pid}/io") as io:
        return next(int(line.split()[1]) for line in io if line.startswith("wchar:"))


def main():
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    rate = float(sys.argv[2]) if len(sys.argv) > 2 else 50.0
    if not os.path.exists(ZPUBD):
        raise SystemExit(f"{ZPUBD} is missing: run `make release` first")
    work = tempfile.mkdtemp(prefix="zpub-write-bytes-")
    ports = {name: free_port() for name in ("pull", "xsub", "xpub", "control")}
    daemon = subprocess.Popen(
        [ZPUBD, "--pull", f"tcp://127.0.0.1:{ports['pull']}", "--xsub", f"tcp://127.0.0.1:{ports['xsub']}",
         "--xpub", f"tcp://127.0.0.1:{ports['xpub']}", "--control", f"tcp://127.0.0.1:{ports['control']}",
         "--history", "w.", "--state-dir", work, "--log-level", "warning"])
    context = zmq.Context()
    control = context.socket(zmq.REQ)
    control.setsockopt(zmq.RCVTIMEO, 5000)
    control.connect(f"tcp://127.0.0.1:{ports['control']}")

    def history():
        control.send(b"STATS")
        return json.loads(control.recv())["history"]

    try:
        time.sleep(0.5)
        push = context.socket(zmq.PUSH)
        push.connect(f"tcp://127.0.0.1:{ports['pull']}")
        time.sleep(0.5)
        before, commits_before = written_bytes(daemon.pid), history()["commits"]
        started = time.monotonic()
        for i in range(count):
            push.send_multipart([b"w.topic", b"%032d" % i])
            delay = started + (i + 1) / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        while history()["written"] < count:
            time.sleep(0.05)
        time.sleep(1.2)  # one sync interval (1 s): the checkpoint's writes are counted too
        stats = history()
        total = written_bytes(daemon.pid) - before
        commits = stats["commits"] - commits_before
        print(f"{count} messages of 32 B at {rate:g}/s: zpubd wrote {total} bytes, {total / count:,.0f} per message; "
              f"{commits} commits ({count / max(commits, 1):.1f} messages each)")
    finally:
        daemon.terminate()
        daemon.wait(10)
        context.destroy(linger=0)


if __name__ == "__main__":
    main()
