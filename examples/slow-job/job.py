#!/usr/bin/python3
"""The slow job: takes its time over each step and PUSHes each result to zpubd as soon as it
has it. It never waits for the web tier, nor the web tier for it: PUSH queues the result,
zpubd hands it to whoever subscribes to "jobs.", and nobody blocks anybody.

Run: python3 job.py [steps] [seconds per step]
"""
import json
import os
import sys
import time

import zmq
from zmq.utils.monitor import recv_monitor_message

endpoint = os.environ.get("ZPUB_PULL", "tcp://127.0.0.1:5557")
steps = int(sys.argv[1]) if len(sys.argv) > 1 else 5
seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 2.0

context = zmq.Context()
push = context.socket(zmq.PUSH)
push.setsockopt(zmq.LINGER, 5000)  # deliver what is queued, but never hang on exit
# A PUSH says nothing of whether anything arrived: watch for a completed handshake (a bare TCP
# connection may still be refused, by zpubd's access checks or CURVE), to tell at exit whether
# zpubd was ever reached.
monitor = push.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
push.connect(endpoint)

job = os.getpid()
for step in range(1, steps + 1):
    time.sleep(seconds)  # the slow part: a report, a transcoding, an import...
    result = {"job": job, "step": step, "of": steps}
    push.send_multipart([f"jobs.{job}".encode(), json.dumps(result).encode()])
    print("pushed", json.dumps(result), flush=True)

# Reached now, or within the linger: otherwise what was queued here is lost, and said so.
reached = monitor.poll(5000) != 0 and recv_monitor_message(monitor)["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED
push.disable_monitor()
monitor.close()
push.close(0 if not reached else None)
context.term()
if not reached:
    sys.exit(f"zpubd at {endpoint} was never reached: the results above were not delivered (is it running?)")
