#!/bin/sh
# The same with the zpub command line tool: a subscriber in the background, two publishes.
# Run against a zpubd started with `make run` (or `zpubd`).
set -eu
ZPUB=${ZPUB:-zpub}
XPUB=${ZPUB_XPUB:-tcp://127.0.0.1:5556}
PULL=${ZPUB_PULL:-tcp://127.0.0.1:5557}
CONTROL=${ZPUB_CONTROL:-tcp://127.0.0.1:5555}

"$ZPUB" sub --endpoint "$XPUB" --count 2 --timeout 5000 weather. &
subscriber=$!
# Publish once zpubd has the subscription (a message sent before that reaches nobody): ask it.
tries=0
until "$ZPUB" subscriptions --control "$CONTROL" weather. 2>/dev/null | grep -q '^weather\.[[:space:]]'; do
    tries=$((tries + 1))
    if [ "$tries" -ge 100 ]; then
        echo "the subscription did not reach zpubd within 5 s: is zpubd running at $CONTROL (make run)?" >&2
        kill "$subscriber" 2>/dev/null
        exit 1
    fi
    sleep 0.05
done
"$ZPUB" pub --endpoint "$PULL" weather.paris 12C sunny      # topic, then one frame per word
echo "13C" | "$ZPUB" pub --endpoint "$PULL" weather.lyon    # one message per line of stdin
wait "$subscriber"
