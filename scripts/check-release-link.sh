#!/bin/sh
# Checks what Package.swift's `releaseLinking` does for a release executable, which no test
# sees (the tests run debug builds): packed relative relocations (DT_RELR) and no exported
# symbols. Without them zpubd's idle RSS grows by about 1.5 MiB each (docs/performance.md,
# "Memory"). Usage: scripts/check-release-link.sh BINARY...
set -eu
status=0
for binary in "$@"; do
    if ! readelf -d "$binary" | grep -q '(RELR)'; then
        echo "check-release-link: $binary has no packed relocations (DT_RELR); is it linked with lld and -z pack-relative-relocs?" >&2
        status=1
    fi
    # A few hundred are the libraries' symbols it imports; 32,000 was the regression.
    symbols=$(readelf --dyn-syms --wide "$binary" | grep -c ' GLOBAL .* [0-9]\+ ' || true)
    if [ "$symbols" -gt 1000 ]; then
        echo "check-release-link: $binary exports $symbols symbols; is it linked with --no-export-dynamic?" >&2
        status=1
    fi
done
exit $status
