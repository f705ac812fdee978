"""zpubd seen from an independent client library (pyzmq): one scenario per argument.

Usage: pyzmq_clients.py SCENARIO PULL XSUB XPUB CONTROL
Prints what it checked; exits 1 with the reason on the first failure.
"""
import json
import sys
import time

import zmq

scenario, pull, xsub, xpub, control = sys.argv[1:6]
context = zmq.Context()
context.setsockopt(zmq.LINGER, 0)


def fail(message):
    print("FAIL: " + message, file=sys.stderr, flush=True)
    sys.exit(1)


def expect(condition, message):
    if not condition:
        fail(message)


def receive(socket, timeout_ms=5000):
    if not socket.poll(timeout_ms):
        fail("nothing arrived within %d ms" % timeout_ms)
    return socket.recv_multipart()


def request(frames, timeout_ms=5000):
    req = context.socket(zmq.REQ)
    req.connect(control)
    req.send_multipart(frames)
    reply = receive(req, timeout_ms)
    req.close()
    expect(len(reply) == 1, "a control reply is one frame, got %d" % len(reply))
    return json.loads(reply[0])


def wait_for_subscriptions(total):
    deadline = time.time() + 10
    while time.time() < deadline:
        if request([b"SUBSCRIPTIONS"])["total"] == total:
            return
        time.sleep(0.02)
    fail("the broker never counted %d subscriptions" % total)


if scenario == "push-sub":
    news = context.socket(zmq.SUB)
    news.connect(xpub)
    news.setsockopt(zmq.SUBSCRIBE, b"news.")
    other = context.socket(zmq.SUB)
    other.connect(xpub)
    other.setsockopt(zmq.SUBSCRIBE, b"other.")
    wait_for_subscriptions(2)
    push = context.socket(zmq.PUSH)
    push.connect(pull)
    sent = [
        [b"news.world", b"part one", b"", bytes(range(256))],
        [b"other.thing", b"x"],
        [b"news.local", b"\x00" * 70000],
    ]
    for message in sent:
        push.send_multipart(message)
    expect(receive(news) == sent[0], "the first news message arrived changed")
    expect(receive(news) == sent[2], "the second news message arrived changed")
    expect(receive(other) == sent[1], "the other message arrived changed")
    expect(not news.poll(200), "a message arrived that news. did not subscribe to")
    stats = request([b"STATS"])
    expect(stats["messages_in"] == 3, "STATS messages_in is %s, not 3" % stats["messages_in"])
    expect(stats["sockets"]["pull"]["messages_in"] == 3, "pull counted %s" % stats["sockets"]["pull"])
    print("push-sub: ok")

elif scenario == "pub-xsub":
    sub = context.socket(zmq.SUB)
    sub.connect(xpub)
    sub.setsockopt(zmq.SUBSCRIBE, b"ticks")
    wait_for_subscriptions(1)
    pub = context.socket(zmq.XPUB)  # an XPUB publisher sees the subscription arrive upstream
    pub.connect(xsub)
    subscription = receive(pub)
    expect(subscription == [b"\x01ticks"], "upstream got %r, not the subscription" % subscription)
    for i in range(50):
        pub.send_multipart([b"ticks.eur", str(i).encode()])
    got = [receive(sub)[1] for _ in range(50)]
    expect(got == [str(i).encode() for i in range(50)], "ticks arrived out of order or changed")
    print("pub-xsub: ok")

elif scenario == "control":
    expect(request([b"PING"]) == {"pong": True}, "PING")
    expect(request([b"HEALTH"])["status"] == "ok", "HEALTH")
    for frames, code in [
        ([b"NOPE"], "unknown_command"),
        ([b"STATS", b"more"], "bad_request"),
        ([b"\xff\xfe\xfd"], "invalid_utf8"),
        ([b"S" * 1000000], "request_too_large"),
        ([b""], "empty_request"),
    ]:
        reply = request(frames)
        expect(reply.get("error", {}).get("code") == code, "%r got %r" % (frames[0][:20], reply))
    expect(request([b"PING"]) == {"pong": True}, "PING after bad requests")
    print("control: ok")

elif scenario == "reload":
    # The daemon was started with a configuration file: RELOAD answers once it is in force.
    for word in [b"RELOAD", b"reload"]:
        reply = request([word], timeout_ms=30000)
        expect(reply.get("reloaded") is True and reply.get("problems") == [], "%r got %r" % (word, reply))
        expect(reply.get("file", "").endswith("zpubd.conf"), "the file read: %r" % reply)
    reply = request([b"RELOAD now"])
    expect(reply.get("error", {}).get("code") == "bad_argument", "RELOAD with an argument got %r" % reply)
    expect(request([b"PING"]) == {"pong": True}, "PING after RELOAD")
    print("reload: ok")

elif scenario == "subscribe-unsubscribe-close":
    # Subscribers that come and go at once: libzmq reads a connection's frames ahead, so the
    # broker may read a subscription and its unsubscription after the connection's close. Each
    # must still count down the other: a leftover is counted for good (libzmq sends nothing
    # more for that connection), and enough of them fill max_subscriptions.
    count = 300
    for index in range(count):
        sub = context.socket(zmq.SUB)
        sub.connect(xpub)
        sub.setsockopt(zmq.SUBSCRIBE, b"churn.%d." % index)
        time.sleep(0.003)  # connected, or nearly: the frames then go out just before the close
        sub.setsockopt(zmq.UNSUBSCRIBE, b"churn.%d." % index)
        sub.close()
    deadline = time.time() + 10
    while time.time() < deadline and request([b"STATS"])["peers"]["xpub"] != 0:
        time.sleep(0.02)
    expect(request([b"STATS"])["peers"]["xpub"] == 0, "the subscribers' connections never all closed")
    # Nothing can come after the closes but libzmq's own unsubscriptions: a leftover stays.
    wait_for_subscriptions(0)
    stats = request([b"STATS"])["subscriptions"]
    expect(stats["unheld_unsubscribes"] == 0, "unsubscriptions not matched to their subscription: %s" % stats)
    expect(stats["subscribe_events"] > 0, "no subscription reached the broker: the test proved nothing")
    print("subscribe-unsubscribe-close: ok (%d subscription frames seen)" % stats["subscribe_events"])

else:
    fail("unknown scenario " + scenario)
