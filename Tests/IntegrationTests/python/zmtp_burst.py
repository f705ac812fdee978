"""A producer that writes a burst and exits, speaking ZMTP 3.0 (NULL mechanism, PUSH) itself
over a Unix socket: after the handshake, COUNT messages ("t", "N xxx...") go out in one write,
and the socket is closed. libzmq's own PUSH writes a few messages at a time when its sender
is slower than its I/O thread, and each small write costs the socket buffer about 1 kB, so it
hands the kernel some 40 kB before it waits: too little to make a paused zpubd read in
several rounds. One write fills the buffer to its 200 kB. Prints how many bytes the kernel
took. With PUB (to zpubd's XSUB) it waits until zpubd has sent it a subscription, and never
reads it: closed with data unread, the socket is reset, and zpubd sees EPOLLERR besides the
hang-up. Usage: zmtp_burst.py SOCKET_PATH COUNT SIZE [PUSH|PUB]"""
import select
import socket
import struct
import sys
import time

path, count, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
socket_type = sys.argv[4].encode() if len(sys.argv) > 4 else b"PUSH"
connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
connection.settimeout(10)
connection.connect(path)


def read_exactly(length):
    data = b""
    while len(data) < length:
        chunk = connection.recv(length - len(data))
        if not chunk:
            sys.exit("zpubd closed the connection during the handshake")
        data += chunk
    return data


# Greeting: signature, version 3.0, mechanism NULL, as-server 0, filler.
connection.sendall(b"\xff" + b"\x00" * 8 + b"\x7f" + b"\x03\x00" + b"NULL".ljust(20, b"\x00") + b"\x00" * 32)
read_exactly(64)
# READY with Socket-Type PUSH or PUB (a short command: flags 0x04, one byte of size).
body = b"\x05READY" + b"\x0bSocket-Type" + struct.pack(">I", len(socket_type)) + socket_type
connection.sendall(b"\x04" + bytes([len(body)]) + body)
flags = read_exactly(1)[0]
length = read_exactly(1)[0] if flags == 0x04 else struct.unpack(">Q", read_exactly(8))[0]
read_exactly(length)
if socket_type == b"PUB" and not select.select([connection], [], [], 10)[0]:
    sys.exit("zpubd sent no subscription within 10 s")


def frame(data, more):
    if len(data) < 256:
        return bytes([1 if more else 0, len(data)]) + data
    return bytes([3 if more else 2]) + struct.pack(">Q", len(data)) + data


burst = b"".join(frame(b"t", True) + frame(b"%d " % number + b"x" * size, False) for number in range(count))
connection.setblocking(False)
handed = 0
deadline = time.monotonic() + 10
while handed < len(burst) and time.monotonic() < deadline:
    try:
        handed += connection.send(burst[handed:])
    except BlockingIOError:
        time.sleep(0.01)
connection.close()
print("handed", handed, "of", len(burst), flush=True)
