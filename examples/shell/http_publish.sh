#!/bin/sh
# Publishes one message through zpubd's HTTP gateway with curl: no ZeroMQ library needed.
# The topic must be under [http] publish_prefixes (docs/http.md, "Publishing over HTTP").
# Run: sh http_publish.sh TOPIC TEXT
# Environment: ZPUB_HTTP (http://127.0.0.1:8080), ZPUB_TOKEN (a token, if the prefix needs one)
set -eu
url=${ZPUB_HTTP:-http://127.0.0.1:8080}
# JSON-quote the arguments (python3 is on every Debian system; jq would do as well).
body=$(python3 -c 'import json, sys; print(json.dumps({"topic": sys.argv[1], "payload": sys.argv[2]}))' "$1" "$2")
if [ -n "${ZPUB_TOKEN:-}" ]; then
    curl --silent --show-error --fail-with-body -H "Authorization: Bearer $ZPUB_TOKEN" \
        -H "Content-Type: application/json" --data "$body" "$url/publish"
else
    curl --silent --show-error --fail-with-body -H "Content-Type: application/json" --data "$body" "$url/publish"
fi
