#!/bin/bash
# Reproduces libzmq 4.3.4's abort under a subscription flood whose peers vanish
# (docs/reliability.md, "A subscription flood"): zpubd with ZMTP heartbeats every
# HEARTBEAT_MS, twenty XSUB peers flooding its XPUB port with 1-1,000-byte subscriptions for
# 2.5 s, then SIGKILLed, ROUNDS times in a row. Exit 0 if zpubd lived through every round.
#
# usage: scripts/flood-vanish.sh [ZPUBD] [HEARTBEAT_MS] [ROUNDS]   (defaults: the release
# build, 100, 4; after `make release`)
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
zpubd=${1:-$here/.build/release/zpubd}
heartbeat=${2:-100}
rounds=${3:-4}
work=$(mktemp -d /tmp/zpub-flood-vanish.XXXXXX)
trap 'kill -9 $pid 2>/dev/null; rm -rf "$work"' EXIT  # SIGKILL: a flooded zpubd drains for minutes
port=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
printf '[daemon]\nlog_level = "warning"\n[sockets]\nheartbeat_interval_ms = %s\nheartbeat_timeout_ms = 30000\n' \
  "$heartbeat" > "$work/zpubd.conf"
"$zpubd" --config "$work/zpubd.conf" --pull "ipc://$work/pull" --control "ipc://$work/control" \
  --xsub "ipc://$work/xsub" --xpub "tcp://127.0.0.1:$port" > "$work/zpubd.log" 2>&1 &
pid=$!
sleep 0.5
for round in $(seq 1 "$rounds"); do
  /usr/bin/python3 "$here/Tests/IntegrationTests/python/subscription_flood.py" "tcp://127.0.0.1:$port" 20 1000 600 \
    > /dev/null &
  flood=$!
  sleep 2.5
  kill -9 $flood
  wait $flood 2>/dev/null
  sleep 2
  if ! kill -0 $pid 2>/dev/null; then
    wait $pid
    echo "round $round: zpubd died (exit status $?): $(tail -c 300 "$work/zpubd.log")"
    exit 1
  fi
done
echo "zpubd lived through $rounds rounds ($(grep VmRSS /proc/$pid/status | tr -s ' '))"
