#!/usr/bin/python3
"""What fan-out costs zpubd over TCP and over multicast (epgm): broker CPU per message.

usage: scripts/multicast-fanout-cost.py [RECEIVERS] [RATE] [SECONDS] [SIZE]
       (as root, after `make release`; `make bench-multicast` runs it)

For each transport (tcp, then epgm) and each number of receivers (RECEIVERS, comma-separated,
default 1,8,64,512), starts a fresh .build/release/zpubd inside a network namespace whose
loopback carries multicast (the host's network is left alone), with its XPUB bound to
tcp://127.0.0.1:5596 or to epgm://127.0.0.1;239.192.1.3:5597, and that many pyzmq SUB sockets
on it (64 to a process). A PUSH producer sends RATE messages a second (default 200)
of SIZE bytes (default 32) for SECONDS (default 20), after a warm-up that ends once every
receiver has a message; then the same with libzmq's zmq_proxy (PULL -> PUB, `zpub-bench
proxy`) in zpubd's place, the baseline. Printed per run: the CPU time of the forwarder (all its
threads, from /proc schedstat) per message and per delivery over the sending window, the share
of it spent in the kernel (/proc stat; on loopback the kernel delivers each multicast packet to
every local receiver in the sender's context, work a network does elsewhere), and what each
receiver got.

A fixed rate, low enough for 512 Python receivers on two cores to keep up: the point is how the
broker's cost grows with receivers (over TCP libzmq writes every message to every connection;
over PGM it sends each message to the group once, and the network and the receivers do the
fan-out), not how fast it goes. At this rate a message's cost includes waking the loop for it.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import zmq

from measure_common import answers_ping, cpu_ns, user_system_s

HERE = os.path.dirname(os.path.abspath(__file__))
ZPUBD = os.path.join(HERE, "..", ".build", "release", "zpubd")
BENCH = os.path.join(HERE, "..", ".build", "release", "zpub-bench")
TCP = "tcp://127.0.0.1:5596"
GROUP = "epgm://127.0.0.1;239.192.1.3:5597"
PER_PROCESS = 64


def receiver(endpoint, count, ready, result):
    """One receiver process: `count` SUB sockets on `endpoint`, all topics. Creates `ready` once
    every socket has a message, counts "data" messages per socket until each has "end" (or 30 s
    of silence), and writes the counts to `result`."""
    context = zmq.Context()
    sockets = []
    poller = zmq.Poller()
    for _ in range(count):
        sub = context.socket(zmq.SUB)
        sub.setsockopt(zmq.RCVHWM, 0)
        sub.connect(endpoint)
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        poller.register(sub, zmq.POLLIN)
        sockets.append(sub)
    index = {sub: i for i, sub in enumerate(sockets)}
    warm = [False] * count
    ended = [False] * count
    received = [0] * count
    last = time.monotonic()
    while not all(ended) and time.monotonic() - last < 30:
        for sub, _ in poller.poll(1000):
            i = index[sub]
            while True:
                try:
                    topic = sub.recv_multipart(zmq.NOBLOCK)[0]
                except zmq.Again:
                    break
                last = time.monotonic()
                if topic == b"data":
                    received[i] += 1
                elif topic == b"end":
                    ended[i] = True
                elif topic == b"warm" and not warm[i]:
                    warm[i] = True
                    if all(warm):
                        open(ready, "w").close()
    with open(result, "w") as out:
        json.dump(received, out)
    for sub in sockets:
        sub.close(linger=0)
    context.term()


def run(command):
    subprocess.run(command, check=True)


def measure(namespace, directory, forwarder, transport, receivers, rate, seconds, size):
    pull = f"ipc://{directory}/pull"
    control = f"ipc://{directory}/control"
    endpoint = TCP if transport == "tcp" else GROUP
    # Only the endpoint measured: XPUB sends every message to a PGM group whether anyone
    # listens or not, which would add the multicast send to every TCP run.
    if forwarder == "zpubd":
        command = [ZPUBD, "--pull", pull, "--xsub", f"ipc://{directory}/xsub", "--control", control,
                   "--xpub", endpoint, "--log-level", "error"]
    else:
        command = [BENCH, "proxy", "--frontend-type", "pull", "--frontend", pull, "--backend", endpoint]
    # OpenPGM prints a warning about the loopback interface on stdout.
    broker = subprocess.Popen(["ip", "netns", "exec", namespace] + command, stdout=subprocess.DEVNULL)
    context = zmq.Context()
    processes = []
    try:
        if forwarder == "zpubd" and not answers_ping(context, control, process=broker, wait_ms=500):
            raise SystemExit("zpubd did not start in its namespace")
        for start in range(0, receivers, PER_PROCESS):
            count = min(PER_PROCESS, receivers - start)
            ready = f"{directory}/ready-{start}"
            result = f"{directory}/result-{start}"
            process = subprocess.Popen(
                ["ip", "netns", "exec", namespace, sys.executable, os.path.abspath(__file__), "--receiver",
                 endpoint, str(count), ready, result], stdout=subprocess.DEVNULL)
            processes.append((process, ready, result))
        push = context.socket(zmq.PUSH)
        push.setsockopt(zmq.SNDHWM, 0)
        push.connect(pull)
        deadline = time.monotonic() + 120
        while not all(os.path.exists(ready) for _, ready, _ in processes):
            if time.monotonic() > deadline:
                raise SystemExit(f"{transport} x{receivers}: the receivers did not all get a message in 120 s")
            push.send_multipart([b"warm", b"w"])
            time.sleep(0.02)
        time.sleep(0.5)
        payload = b"x" * size
        messages = rate * seconds
        cpu_before = cpu_ns(broker.pid)
        user_before, system_before = user_system_s(broker.pid)
        start = time.monotonic()
        for number in range(messages):
            push.send_multipart([b"data", payload])
            pause = start + (number + 1) / rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)
        time.sleep(0.2)
        cpu = cpu_ns(broker.pid) - cpu_before
        user, system = user_system_s(broker.pid)
        user_share = (user - user_before) / max(user - user_before + system - system_before, 1e-9)
        for _ in range(20):
            push.send_multipart([b"end", b"e"])
            time.sleep(0.1)
        got = []
        for process, _, result in processes:
            process.wait(timeout=60)
            with open(result) as counts:
                got += json.load(counts)
        push.close(linger=0)
        return messages, got, cpu, user_share
    finally:
        for process, _, _ in processes:
            if process.poll() is None:
                process.kill()
        context.destroy(linger=0)
        broker.terminate()
        broker.wait()


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--receiver":
        receiver(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5])
        return
    if os.geteuid() != 0:
        raise SystemExit("run as root: the receivers and zpubd share a network namespace whose loopback carries multicast")
    for program in (ZPUBD, BENCH):
        if not os.path.exists(program):
            raise SystemExit(f"{program} is missing: run `make release` first")
    if not zmq.has("pgm"):
        raise SystemExit("this libzmq has no PGM (epgm://)")
    counts = [int(n) for n in (sys.argv[1] if len(sys.argv) > 1 else "1,8,64,512").split(",")]
    rate = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    seconds = int(sys.argv[3]) if len(sys.argv) > 3 else 20
    size = int(sys.argv[4]) if len(sys.argv) > 4 else 32
    namespace = f"zpmcb-{os.getpid()}"
    directory = tempfile.mkdtemp(prefix="zpub-mcbench-")
    run(["ip", "netns", "add", namespace])
    try:
        for arguments in (["link", "set", "lo", "up"], ["link", "set", "lo", "multicast", "on"],
                          ["route", "add", "239.0.0.0/8", "dev", "lo"]):
            run(["ip", "-n", namespace] + arguments)
        print(f"{rate} messages/s of {size} B for {seconds} s, zpubd with io_threads = 1\n")
        print("| transport | receivers | zpubd: µs of CPU per message | of it in the kernel | ns per delivery | zmq_proxy (PULL -> PUB): µs per message | zpubd / zmq_proxy | received per receiver (min, of sent) |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for transport in ("tcp", "epgm"):
            for receivers in counts:
                results = {}
                for forwarder in ("zpubd", "zmq_proxy"):
                    results[forwarder] = measure(
                        namespace, directory, forwarder, transport, receivers, rate, seconds, size)
                messages, got, cpu, user_share = results["zpubd"]
                _, proxy_got, proxy_cpu, _ = results["zmq_proxy"]
                print(f"| {transport} | {receivers} | {cpu / messages / 1000:.1f} | {1 - user_share:.0%} | "
                      f"{cpu / messages / receivers:,.0f} | {proxy_cpu / messages / 1000:.1f} | {cpu / proxy_cpu:.2f}x | "
                      f"{min(got)} and {min(proxy_got)} of {messages} |", flush=True)
    finally:
        subprocess.run(["ip", "netns", "delete", namespace])
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
