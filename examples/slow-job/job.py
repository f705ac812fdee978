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

endpoint = os.environ.get("ZPUB_PULL", "tcp://127.0.0.1:5557")
steps = int(sys.argv[1]) if len(sys.argv) > 1 else 5
seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 2.0

context = zmq.Context()
push = context.socket(zmq.PUSH)
push.setsockopt(zmq.LINGER, 5000)  # deliver what is queued, but never hang on exit
push.connect(endpoint)

job = os.getpid()
for step in range(1, steps + 1):
    time.sleep(seconds)  # the slow part: a report, a transcoding, an import...
    result = {"job": job, "step": step, "of": steps}
    push.send_multipart([f"jobs.{job}".encode(), json.dumps(result).encode()])
    print("pushed", json.dumps(result), flush=True)

push.close()
context.term()
