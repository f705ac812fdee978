#!/bin/sh
# The same with the zpub command line tool: a subscriber in the background, two publishes.
# Run against a zpubd started with `make run` (or `zpubd`).
set -eu
ZPUB=${ZPUB:-zpub}
XPUB=${ZPUB_XPUB:-tcp://127.0.0.1:5556}
PULL=${ZPUB_PULL:-tcp://127.0.0.1:5557}

"$ZPUB" sub --endpoint "$XPUB" --count 2 --timeout 5000 weather. &
subscriber=$!
sleep 0.5                                                   # let the subscription reach zpubd
"$ZPUB" pub --endpoint "$PULL" weather.paris 12C sunny      # topic, then one frame per word
echo "13C" | "$ZPUB" pub --endpoint "$PULL" weather.lyon    # one message per line of stdin
wait "$subscriber"
