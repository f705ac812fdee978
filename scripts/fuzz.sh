#!/bin/sh
# Builds the libFuzzer targets in Fuzz/ with AddressSanitizer and runs each for SECONDS
# (default 60), seeded from the corpora in Fuzz/corpus/<target>; new finds go to
# .build-fuzz/corpus/<target> (copy the interesting ones into Fuzz/corpus). A crash stops the run with the fuzzer's report and a non-zero status; the
# input that caused it is left as crash-* in .build-fuzz/artifacts.
#   scripts/fuzz.sh            60 s per target (make fuzz)
#   scripts/fuzz.sh 10         a short bounded run (make test)
set -eu
# A crash must be reported, not hang: the Swift runtime's backtracer (swift-backtrace) hangs
# under the sanitizers, and libFuzzer prints its own stack anyway.
export SWIFT_BACKTRACE=enable=no
seconds=${1:-60}
cd "$(dirname "$0")/.."
scratch=.build-fuzz
targets="ControlRequestFuzzer ConfigurationFuzzer SubscriptionFuzzer MessageJSONFuzzer"
mkdir -p "$scratch/artifacts"
# The coverage instrumentation, asked for by name: `--sanitize fuzzer` alone compiled objects
# without it on a clean scratch path (libFuzzer then fuzzes blind, with "no interesting inputs"),
# though an older scratch path had it.
build="swift build --scratch-path $scratch --sanitize fuzzer --sanitize address
    -Xswiftc -sanitize-coverage=edge,inline-8bit-counters,pc-table,trace-cmp"
# Quiet when the build works; its errors when it does not (a fuzzer that no longer compiles
# must say why, not just fail).
for target in $targets; do
    ZPUB_FUZZ=1 $build --product "$target" >"$scratch/build-$target.log" 2>&1 || {
        grep -E "error:" "$scratch/build-$target.log" | sort -u | head -n 20
        echo "fuzz: $target does not build; the whole log is $scratch/build-$target.log" >&2
        exit 1
    }
done
bin=$(ZPUB_FUZZ=1 $build --show-bin-path)
for target in $targets; do
    corpus="$scratch/corpus/$target"
    mkdir -p "$corpus"
    echo "fuzz: $target for ${seconds}s"
    "$bin/$target" -max_total_time="$seconds" -max_len=4096 -timeout=10 \
        -artifact_prefix="$scratch/artifacts/$target-" -print_final_stats=1 "$corpus" "Fuzz/corpus/$target" 2>"$scratch/$target.log" || {
        tail -n 40 "$scratch/$target.log"
        echo "fuzz: $target found a crash; the input is in $scratch/artifacts/" >&2
        exit 1
    }
    grep -q "inline 8-bit counters" "$scratch/$target.log" || {
        echo "fuzz: $target ran without coverage feedback (no counters loaded; see $scratch/$target.log)" >&2
        exit 1
    }
    grep -E "stat::number_of_executed_units|stat::new_units_added|stat::peak_rss_mb" "$scratch/$target.log" |
        sed "s/^/fuzz: $target /"
done
echo "fuzz: no crash"
