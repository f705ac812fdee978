#!/bin/sh
# How fast a client catches up from history: `zpub sub --since 0` (REPLAY, then HISTORY pages
# of 1,000, then live) and `zpub history --since 0`, reading N kept messages from a zpubd with
# an on-disk store, at 32 B and 1 KiB. Reported: messages per second for each reader, and
# zpubd's CPU time per replayed message (from /proc, over the reader's run). Wall time on a
# shared 2-core machine moves by some 10% from run to run; compare within one run.
#
# Usage: scripts/replay-rate.sh [N]   (after `make release`; default N = 200000)
set -eu
count=${1:-200000}
. "$(dirname "$0")/measure-common.sh"
broker=
trap '[ -n "$broker" ] && kill "$broker" 2>/dev/null; rm -rf "$work"' EXIT
now() { python3 -c 'import time; print(time.monotonic())'; }
# zpubd's user+system CPU in clock ticks.
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }

printf '| size | messages | reader | seconds | msgs/s | zpubd CPU µs/msg |\n|---|---:|---|---:|---:|---:|\n'
for size in 32 1024; do
    pull=tcp://127.0.0.1:$(port) xpub=tcp://127.0.0.1:$(port) control=tcp://127.0.0.1:$(port)
    "$bin/zpubd" --pull "$pull" --xpub "$xpub" --xsub tcp://127.0.0.1:$(port) --control "$control" \
        --history t. --state-dir "$work/state-$size" --log-level warning &
    broker=$!
    wait_broker "$broker" "$control" /dev/null
    # N messages, paced by the writer: a burst the writer's queue cannot hold would be dropped.
    # zpub pub waits up to --timeout for the broker to take what it queued (its linger); the
    # default 3 s dropped the last messages once, under valgrind on a busy machine.
    python3 -c "import sys; line='x'*$size; sys.stdout.write((line+'\n')*$count)" |
        "$bin/zpub" pub --timeout 600000 -e "$pull" t.topic
    until "$bin/zpub" stats -c "$control" --json |
        python3 -c "import json,sys; h=json.load(sys.stdin)['history']; sys.exit(0 if h['written'] + h['dropped'] >= $count else 1)"; do
        sleep 0.5
    done
    kept=$("$bin/zpub" stats -c "$control" --json | python3 -c "import json,sys; print(json.load(sys.stdin)['history']['messages'])")
    ticks=$(getconf CLK_TCK)
    for reader in sub history; do
        before=$(cpu "$broker") start=$(now)
        if [ "$reader" = sub ]; then
            "$bin/zpub" sub -e "$xpub" -c "$control" --since 0 --count "$kept" t. >/dev/null
        else
            "$bin/zpub" history -c "$control" --since 0 t. >/dev/null
        fi
        end=$(now) after=$(cpu "$broker")
        python3 -c "
s = $end - $start
print('| %d B | %d | zpub %s --since 0 | %.2f | %.0f | %.2f |' % ($size, $kept, '$reader', s, $kept / s, ($after - $before) / $ticks * 1e6 / $kept))"
    done
    kill -TERM "$broker"
    wait "$broker" || true
    broker=
done
