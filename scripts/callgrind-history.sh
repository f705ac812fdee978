#!/bin/sh
# What keeping history costs zpubd, in instructions per forwarded message (valgrind's
# callgrind: the same count every run, unlike time on a shared machine). For 32 B and 1 KiB
# messages, zpubd runs under callgrind with history off and with history on for all traffic
# (on disk), forwarding N and then 2N messages from a PUSH to one SUB; the difference of the
# two runs divided by N removes start-up and shutdown. Reported per message: forwarding itself
# (everything inside ForwardingLoop.forwardBurst: receiving, accounting, history's copy,
# sending; steady within a few instructions from run to run), the forwarding loop's whole
# thread, the history writer's thread, and all of zpubd (libzmq's I/O thread included), also without its control thread. The
# whole thread's figure moves by some hundreds from run to run: how many messages each poll
# finds depends on timing. Under valgrind the threads take turns, so the send HWM is lifted to keep
# XPUB from dropping while libzmq's I/O thread waits for its turn.
#
# Usage: scripts/callgrind-history.sh [N]   (after `make release`; default N = 20000)
# KEEP_WORK=1 keeps callgrind's files; CALLGRIND_OPTS adds options (--dump-instr=yes, to
# annotate the disassembly); SIZES (default "32 1024") narrows a run.
# valgrind 3.19 cannot read the DWARF 5 of a static-stdlib build, so a copy stripped of debug
# information (symbols kept) is measured; the instructions are the same.
set -eu
count=${1:-20000}
. "$(dirname "$0")/measure-common.sh"
stripped zpubd

# Instructions of one run: prints "loop writer total forwarding control".
measure() { # size history messages
    size=$1 history=$2 messages=$3
    run="$work/run-$size-$history-$messages"
    mkdir -p "$run"
    pull=tcp://127.0.0.1:$(port) xpub=tcp://127.0.0.1:$(port) control=tcp://127.0.0.1:$(port)
    printf '[sockets]\nsend_hwm = 0\n' >"$run/zpubd.conf"
    set -- --config "$run/zpubd.conf" --pull "$pull" --xpub "$xpub" --xsub tcp://127.0.0.1:$(port) \
        --control "$control" --log-level warning
    [ "$history" = on ] && set -- "$@" --history t --state-dir "$run/state"
    valgrind --tool=callgrind --fair-sched=yes --separate-threads=yes ${CALLGRIND_OPTS:-} --callgrind-out-file="$run/cg.out" "$work/zpubd" "$@" \
        2>"$run/valgrind.log" &
    broker=$!
    wait_broker "$broker" "$control" "$run/valgrind.log"
    start_subscriber "$xpub" "$messages"
    subscriber=$!
    until "$bin/zpub" stats -c "$control" --json | grep -q '"total":1'; do sleep 0.1; done
    # zpub pub waits up to --timeout for the broker to take what it queued (its linger); the
    # default 3 s dropped the last messages once, under valgrind on a busy machine.
    python3 -c "import sys; line='x'*$size; sys.stdout.write((line+'\n')*$messages)" |
        "$bin/zpub" pub --timeout 600000 -e "$pull" t.topic
    wait_subscribers "$broker" "$run/valgrind.log" "$subscriber"
    if [ "$history" = on ]; then
        until "$bin/zpub" stats -c "$control" --json |
            python3 -c "import json,sys; h=json.load(sys.stdin)['history']; sys.exit(0 if h['written'] >= $messages else 1)"; do
            sleep 0.2
        done
    fi
    kill -TERM "$broker"
    wait "$broker" || true
    # One file per thread; the thread is named by the functions it ran.
    loop=0 writer=0 total=0 forwarding=0 control=0
    for file in "$run"/cg.out*; do
        instructions=$(sed -n 's/^summary: //p' "$file" | cut -d' ' -f1)
        [ -n "$instructions" ] || continue
        total=$((total + instructions))
        if grep -q 'ForwardingLoopC3run' "$file"; then
            loop=$((loop + instructions))
            # Inside forwardBurst: receiving and forwarding messages, without the poll loop
            # around it, whose cost per message depends on how many each poll finds.
            burst=$(callgrind_annotate --inclusive=yes "$file" 2>/dev/null | grep 'forwardBurst' |
                sed -n 's/^ *\([0-9,]*\) .*/\1/p' | tr -d , | sort -n | tail -1)
            forwarding=$((forwarding + ${burst:-0}))
        fi
        if grep -q 'HistoryWriterC3run' "$file"; then writer=$((writer + instructions)); fi
        if grep -q 'ControlServerC3run' "$file"; then control=$((control + instructions)); fi
    done
    echo "$loop $writer $total $forwarding $control"
}

# The last column leaves out the control thread: it answers this script's `zpub stats`
# polls, whose number follows the time a run takes, not its messages (-35 to +70
# instructions a message between runs of the same build).
printf '| size | history | forwarding instr/msg | loop thread instr/msg | writer thread instr/msg | zpubd instr/msg | zpubd without the control thread |\n|---|---|---:|---:|---:|---:|---:|\n'
for size in ${SIZES:-32 1024}; do
    for history in off on; do
        # Assigned first, so that a failed measurement stops the script (set -e).
        figures=$(measure $size $history "$count")
        set -- $figures
        one_loop=$1 one_writer=$2 one_total=$3 one_forwarding=$4 one_control=$5
        figures=$(measure $size $history $((2 * count)))
        set -- $figures
        printf '| %s B | %s | %d | %d | %d | %d | %d |\n' "$size" "$history" $((($4 - one_forwarding) / count)) \
            $((($1 - one_loop) / count)) $((($2 - one_writer) / count)) $((($3 - one_total) / count)) \
            $((($3 - $5 - one_total + one_control) / count))
    done
done
