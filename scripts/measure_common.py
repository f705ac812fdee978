"""What the measurement scripts read about a process under test, from /proc, in one place,
and how they wait for the zpubd they started.

Imported by the scripts beside it (gateway-fanout-cost.py, multicast-fanout-cost.py,
memory-soak.py, http-idle-cost.py, control-lockstep.py); Python puts a script's own folder
first on its path.
"""
import os
import socket
import time


_handed_out = set()


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on now and that this process has not been
    given before (the kernel may hand out the same free port twice in a row, and zpubd refuses
    one endpoint for two sockets)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def answers_ping(context, control, process=None, timeout_s=15, wait_ms=200):
    """True once zpubd answers PING on its control endpoint; False when timeout_s passes first,
    or when `process` (the Popen it runs in) has ended. A fresh REQ each try: a REQ whose
    request went unanswered cannot ask again."""
    import zmq  # here: the /proc readers above serve scripts that have no pyzmq

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        request = context.socket(zmq.REQ)
        request.setsockopt(zmq.LINGER, 0)
        request.connect(control)
        request.send(b"PING")
        answered = request.poll(wait_ms)
        request.close()
        if answered:
            return True
        if process is not None and process.poll() is not None:
            return False
    return False


def process_tree(pid):
    """pid and every process below it (Pushpin's runner starts one process per service)."""
    tree, at = [pid], 0
    while at < len(tree):
        try:
            for task in os.listdir(f"/proc/{tree[at]}/task"):
                with open(f"/proc/{tree[at]}/task/{task}/children") as children:
                    tree += [int(child) for child in children.read().split()]
        except OSError:
            pass  # the process ended meanwhile
        at += 1
    return tree


def cpu_ns(pid, children=False):
    """CPU time of all of a process's threads (and, with children, of the processes below it),
    in ns: the first field of each thread's schedstat, exact where /proc/PID/stat counts ticks."""
    total = 0
    for process in process_tree(pid) if children else [pid]:
        try:
            for task in os.listdir(f"/proc/{process}/task"):
                try:
                    with open(f"/proc/{process}/task/{task}/schedstat") as stat:
                        total += int(stat.read().split()[0])
                except (OSError, ValueError):
                    pass  # the thread ended meanwhile
        except OSError:
            pass  # the process ended meanwhile
    return total


def user_system_s(pid):
    """User and system CPU time of a process (all its threads), in seconds (/proc stat ticks)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / ticks, int(fields[12]) / ticks


def memory_kib(pid):
    """(anonymous, file-backed) resident KiB, from /proc/PID/status; shared memory counts as
    file-backed."""
    fields = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("RssAnon", "RssFile", "RssShmem"):
                fields[key] = int(value.split()[0])
    return fields.get("RssAnon", 0), fields.get("RssFile", 0) + fields.get("RssShmem", 0)
