# Shared by the measurement scripts (sourced, not run): where the release build is, a scratch
# directory removed on exit, and free loopback ports.
# valgrind 3.19 cannot read the DWARF 5 of a static-stdlib build, so the callgrind scripts
# measure copies stripped of debug information (symbols kept; the instructions are the same):
# `stripped zpubd` makes $work/zpubd.
here=$(cd "$(dirname "$0")/.." && pwd)
bin="$here/.build/release"
work=$(mktemp -d)
# KEEP_WORK=1 keeps the scratch directory (callgrind's files, to annotate) and names it.
if [ "${KEEP_WORK:-0}" = 1 ]; then
    echo "scratch directory kept: $work" >&2
else
    trap 'rm -rf "$work"' EXIT
fi

stripped() { strip --strip-debug -o "$work/$1" "$bin/$1"; }

# What the scripts run: valgrind, pyzmq for Python clients (PUB ingest, many topics), and
# the release build (`make release`).
"$here/scripts/install-deps.sh" valgrind python3-zmq
if [ ! -x "$bin/zpubd" ]; then
    echo "no release build in $bin: run 'make release' first" >&2
    exit 1
fi
# A loopback port nobody listens on and this script has not handed out yet (the kernel may
# give the same free port twice in a row, and zpubd refuses one endpoint for two sockets),
# and waiting until one accepts connections.
port() {
    while :; do
        p=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
        if ! grep -qx "$p" "$work/ports" 2>/dev/null; then
            echo "$p" >>"$work/ports"
            echo "$p"
            return
        fi
    done
}
# With a pid and a log, stops the script, naming the log, if that process ends first (valgrind
# missing or crashed, a refused configuration) or nothing listens within 120 s.
wait_port() { # port [pid log]
    tries=0
    until python3 -c "import socket; socket.create_connection(('127.0.0.1', $1), 1)" 2>/dev/null; do
        tries=$((tries + 1))
        if [ -n "${2:-}" ] && ! kill -0 "$2" 2>/dev/null; then
            echo "the forwarder exited before it listened on port $1; see ${3:-its log}:" >&2
            [ -n "${3:-}" ] && tail -5 "$3" >&2
            exit 1
        fi
        if [ "$tries" -ge 600 ]; then
            echo "nothing listens on port $1 after 120 s${3:+; see $3}" >&2
            exit 1
        fi
        sleep 0.2
    done
}
# Waits until the zpubd of process `pid` answers PING on `control`; stops the script, naming
# `log`, if that process ends first (a refused configuration, a crash under valgrind).
wait_broker() { # pid control log
    until "$bin/zpub" ping -c "$2" --timeout 1000 >/dev/null 2>&1; do
        if ! kill -0 "$1" 2>/dev/null; then
            echo "zpubd exited before it answered; see $3:" >&2
            tail -5 "$3" >&2
            exit 1
        fi
        sleep 0.2
    done
}

# Subscribers (`zpub sub --count N`) run under `timeout $delivery_timeout` (start_subscriber);
# wait_subscribers waits for them and stops the script, printing the end of `log`, if one did
# not get its N messages in time. A lost message
# would otherwise leave the script waiting for ever (it once did: PULL heartbeats dropped a
# producer that valgrind's zpubd held back, and what was in flight was lost).
delivery_timeout=${DELIVERY_TIMEOUT:-1800}
# Starts, in the background, a subscriber to topic prefix `t` that waits for `count` messages
# (its pid in $!).
start_subscriber() { # xpub count
    timeout "$delivery_timeout" "$bin/zpub" sub -e "$1" --count "$2" t >/dev/null &
}
wait_subscribers() { # broker log pid...
    broker=$1 log=$2
    shift 2
    for pid in "$@"; do
        if ! wait "$pid"; then
            echo "a subscriber did not receive every message within $delivery_timeout s: messages were" \
                "lost, or DELIVERY_TIMEOUT is too short for this machine; the end of $log:" >&2
            tail -5 "$log" >&2
            # The other subscribers would wait out their own timeouts.
            for other in "$@"; do kill -TERM "$other" 2>/dev/null || true; done
            kill -TERM "$broker" 2>/dev/null || true
            exit 1
        fi
    done
}

# Callgrind counts every byte that a `rep movsb`/`rep stosb` moves as one instruction, but the
# CPU moves a cache line or more per cycle. glibc takes those instructions for copies and fills
# of 2-4 KiB and more, so SQLite's page work at 1 KiB counted some 2,000 instructions per
# message more than the vector loop glibc uses below that size (docs/history.md). The
# callgrind scripts raise glibc's thresholds so that every copy runs the vector loop, in the
# baselines too: the count then follows the bytes moved. REP_STRINGS=1 keeps glibc's choice.
if [ "${REP_STRINGS:-0}" != 1 ]; then
    GLIBC_TUNABLES=glibc.cpu.x86_rep_movsb_threshold=1073741824:glibc.cpu.x86_rep_stosb_threshold=1073741824
    export GLIBC_TUNABLES
fi
