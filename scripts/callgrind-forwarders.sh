#!/bin/sh
# Instructions per delivered message of each forwarder (valgrind's callgrind: the same count
# every run, unlike time on a shared machine): libzmq's zmq_proxy (PULL -> PUB), the plain C-style
# poll loop (PULL -> XPUB), and zpubd with topic accounting off and on. Each runs under callgrind
# while a PUSH producer sends N and then 2N messages of two frames to S subscribers (`zpub sub`);
# the difference of the two runs divided by N x S removes start-up and shutdown. Counted: the
# whole forwarder process (its loop and libzmq's I/O thread), not the kernel (TCP on loopback
# is the same for all).
#
# Usage: scripts/callgrind-forwarders.sh [N] [REPEATS]   (after `make release`; default N = 20000,
# REPEATS = 1). FORWARDERS (default "proxy loop zpubd-off zpubd-on") and CASES (default
# "32x1 32x8 1024x1") narrow a run; KEEP_WORK=1 keeps each run's cg.out to annotate.
# CALLGRIND_OPTS adds options (--dump-instr=yes, to annotate the disassembly).
# ZPUBD_CONFIG adds lines to zpubd's configuration (with \n between them), for example
# ZPUBD_CONFIG='[last_value]\nprefixes = ["state."]' for the cost of a feature's checks.
# TOPICS=N (PUSH ingest) sends on N topics in turn (t.00000, t.00001, ...) instead of one;
# TOPIC_PREFIX replaces their "t." (a longer one measures topics over 16 bytes, which zpubd
# hashes and compares in full; it must start with "t", the subscribers' prefix).
# INGEST=pub measures the publishers' path instead: the producer publishes into
# each forwarder's XSUB, and zmq_proxy runs XSUB -> XPUB (the baseline issue 14 names).
# With REPEATS > 1 each figure is the median of that many N/2N pairs, with their range: the
# 1 KiB column moves by about a hundred instructions from run to run (how many messages each
# poll finds while valgrind runs the threads in turns), 32 B by about ten.
# valgrind 3.19 cannot read the DWARF 5 of a static-stdlib build, so copies stripped of debug
# information (symbols kept) are measured; the instructions are the same.
set -eu
count=${1:-20000}
repeats=${2:-1}
ingest=${INGEST:-push}
. "$(dirname "$0")/measure-common.sh"
stripped zpubd
stripped zpub-bench

# Instructions of the whole forwarder for one run: forwarder size subscribers messages.
measure() {
    forwarder=$1 size=$2 subscribers=$3 messages=$4
    run="$work/run-$forwarder-$size-$subscribers-$messages"
    mkdir -p "$run"
    pull_port=$(port) xsub_port=$(port) xpub_port=$(port)
    pull=tcp://127.0.0.1:$pull_port xsub=tcp://127.0.0.1:$xsub_port xpub=tcp://127.0.0.1:$xpub_port
    if [ "$ingest" = pub ]; then ingest_port=$xsub_port; else ingest_port=$pull_port; fi
    case $forwarder in
    # Under valgrind the threads take turns: every forwarder's send HWM is lifted so that none
    # drops while libzmq's I/O thread waits for its turn.
    proxy)
        if [ "$ingest" = pub ]; then frontend="--frontend-type xsub --frontend $xsub"; else frontend="--frontend-type pull --frontend $pull"; fi
        # shellcheck disable=SC2086 # two options in one variable
        set -- "$work/zpub-bench" proxy $frontend --backend "$xpub" --send-hwm 0
        ;;
    loop) set -- "$work/zpub-bench" loop --pull "$pull" --xsub "$xsub" --xpub "$xpub" --send-hwm 0 ;;
    zpubd-*)
        accounting=true
        [ "$forwarder" = zpubd-off ] && accounting=false
        printf '[daemon]\ntopic_accounting = %s\n[sockets]\nsend_hwm = 0\n%b\n' $accounting "${ZPUBD_CONFIG:-}" >"$run/zpubd.conf"
        set -- "$work/zpubd" --config "$run/zpubd.conf" --pull "$pull" --xpub "$xpub" \
            --xsub "$xsub" --control tcp://127.0.0.1:$(port) --log-level warning
        ;;
    esac
    # --fair-sched: valgrind runs one thread at a time, and by default which one runs next
    # decides how many messages each poll finds; its fair scheduler takes turns in order, which
    # cut the spread between runs at 1 KiB from ~350 instructions to ~120 (5 runs each).
    valgrind --tool=callgrind --fair-sched=yes ${CALLGRIND_OPTS:-} --callgrind-out-file="$run/cg.out" "$@" 2>"$run/valgrind.log" &
    broker=$!
    wait_port "$ingest_port" "$broker" "$run/valgrind.log"
    wait_port "$xpub_port" "$broker" "$run/valgrind.log"
    i=0 pids=
    while [ $i -lt "$subscribers" ]; do
        start_subscriber "$xpub" "$messages"
        pids="$pids $!"
        i=$((i + 1))
    done
    # The baselines have no control socket to ask: wait until every subscriber is connected,
    # then give the subscriptions a moment to be processed (a probe message would change the
    # counts).
    until [ "$(ss -Htn state established "( sport = :$xpub_port )" | wc -l)" -ge "$subscribers" ]; do sleep 0.2; done
    sleep 2
    if [ "$ingest" = pub ]; then
        publish "$xsub" "$size" "$messages"
    else
        # zpub pub waits up to --timeout for the broker to take what it queued (its linger); the
        # default 3 s dropped the last messages once, under valgrind on a busy machine.
        if [ "${TOPICS:-1}" -gt 1 ]; then
            push_topics "$pull" "$size" "$messages" "$TOPICS"
        else
            python3 -c "import sys; line='x'*$size; sys.stdout.write((line+'\n')*$messages)" |
                "$bin/zpub" pub --timeout 600000 -e "$pull" t.topic
        fi
    fi
    # shellcheck disable=SC2086 # one pid per word
    wait_subscribers "$broker" "$run/valgrind.log" $pids
    # (Silenced: the shell's "Terminated" notice for the killed job would fill the table.)
    { kill -TERM "$broker" && wait "$broker"; } 2>/dev/null || true
    sed -n 's/^summary: //p' "$run/cg.out" | cut -d' ' -f1
}

# Publishes MESSAGES of [t.topic, SIZE bytes] into an XSUB at ENDPOINT with pyzmq. An XPUB,
# not a PUB: it sees the subscribers' subscription arrive through the forwarder and sends only
# then (a PUB would drop what it sends before), and with no send HWM it drops nothing while the
# forwarder runs slowly under valgrind.
publish() { # endpoint size messages
    /usr/bin/python3 - "$@" <<'PYTHON'
import sys
import zmq
endpoint, size, messages = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
context = zmq.Context()
publisher = context.socket(zmq.XPUB)
publisher.setsockopt(zmq.SNDHWM, 0)
publisher.connect(endpoint)
while not publisher.recv().startswith(b"\x01t"):
    pass
payload = b"x" * size
for _ in range(messages):
    publisher.send_multipart([b"t.topic", payload])
publisher.close(linger=-1)
context.term()
PYTHON
}

# PUSHes MESSAGES of [t.NNNNN, SIZE bytes] to ENDPOINT with pyzmq, on TOPICS topics in turn.
push_topics() { # endpoint size messages topics
    /usr/bin/python3 - "$@" "${TOPIC_PREFIX:-t.}" <<'PYTHON'
import sys
import zmq
endpoint, size, messages, topics = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
prefix = sys.argv[5].encode()
context = zmq.Context()
producer = context.socket(zmq.PUSH)
producer.setsockopt(zmq.SNDHWM, 0)
producer.connect(endpoint)
names = [prefix + b"%05d" % i for i in range(topics)]
payload = b"x" * size
for i in range(messages):
    producer.send_multipart([names[i % topics], payload])
producer.close(linger=-1)
context.term()
PYTHON
}

echo "ingest: $ingest"
cases=${CASES:-32x1 32x8 1024x1}
header="| forwarder |" rule="|---|"
for case in $cases; do
    size=${case%x*}
    label="$size B"
    [ $((size % 1024)) -eq 0 ] && label="$((size / 1024)) KiB"
    header="$header $label x${case#*x} |" rule="$rule---:|"
done
printf '%s\n%s\n' "$header" "$rule"
for forwarder in ${FORWARDERS:-proxy loop zpubd-off zpubd-on}; do
    line="| $forwarder |"
    for case in $cases; do
        size=${case%x*} subscribers=${case#*x}
        figures=
        r=0
        while [ $r -lt "$repeats" ]; do
            one=$(measure $forwarder $size $subscribers "$count")
            two=$(measure $forwarder $size $subscribers $((2 * count)))
            figures="$figures $(((two - one) / (count * subscribers)))"
            r=$((r + 1))
        done
        sorted=$(printf '%s\n' $figures | sort -n)
        median=$(printf '%s\n' "$sorted" | sed -n "$(((repeats + 1) / 2))p")
        # The range beside the median: how far one pair's figure moves in this run.
        [ "$repeats" -gt 1 ] && median="$median ($(printf '%s\n' "$sorted" | head -1)-$(printf '%s\n' "$sorted" | tail -1))"
        line="$line $median |"
    done
    echo "$line"
done
