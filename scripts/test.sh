#!/bin/sh
# Runs every XCTest suite, as many suites at a time as there are cores (TEST_JOBS), each in a
# process of its own with its log in .build/test-logs/SUITE.log, and sums them up: tests,
# failures and skips (a skip is listed: a test that skipped could not fail). Exits non-zero on
# any failure, crash or hang, and prints the logs of the suites that had one.
#
# Why not `swift test` alone: it ran the suites one after another in 13 minutes, most of it
# spent waiting (on daemons starting, deadlines running out), with the machine 40% busy; the
# whole `make test` was at 18.5 of its 20 minutes. `swift test --parallel` runs each test in its
# own process but reports a skipped test as passed and keeps no log of a test that passed.
# The tests hold on a loaded machine (each waits on conditions, not sleeps), so two suites at
# once is load they already take.
#   scripts/test.sh                 all suites
#   scripts/test.sh PairTests ...   only these suites (or modules: ZPubCoreTests)
set -u
cd "$(dirname "$0")/.."
swift=${SWIFT:-swift}
bundle="$($swift build --show-bin-path)/zpubPackageTests.xctest"
[ -x "$bundle" ] || { echo "test: $bundle is missing; build it first: swift build --build-tests" >&2; exit 1; }
logs=.build/test-logs
rm -rf "$logs" && mkdir -p "$logs"
jobs=${TEST_JOBS:-$(nproc)}
# A suite that takes longer than this hangs: it is killed and counts as failed.
limit=${TEST_SUITE_SECONDS:-900}

all=$("$bundle" --list-tests 2>/dev/null | sed -n 's|^\([A-Za-z0-9_]*\.[A-Za-z0-9_]*\)/.*|\1|p' | sort -u)
[ -n "$all" ] || { echo "test: $bundle lists no tests" >&2; exit 1; }
if [ $# -gt 0 ]; then
    chosen=""
    for name in "$@"; do
        match=$(echo "$all" | grep -E "^$name\.|(^|\.)$name\$") || { echo "test: no suite or module $name" >&2; exit 1; }
        chosen="$chosen $match"
    done
    all=$(printf '%s\n' $chosen | sort -u)
fi
# The longest suites first (seconds measured on 2026-12-06), so that the queues end together;
# a suite not named here runs after them.
longest="PairTests HTTPGatewayTests FaultTests HistoryTests GatewayConnectionLimitsTests LifecycleTests
    GatewaySubscriptionChurnTests NetworkFaultTests CLITests ControlTests GatewayCredentialsTests PackageTests
    TopTests SecurityTests ForwardingTests LastValueTests"
order=$(
    for name in $longest; do echo "$all" | grep -E "\.$name\$"; done
    for suite in $all; do
        case " $(echo $longest) " in *" ${suite#*.} "*) ;; *) echo "$suite" ;; esac
    done
)

started=$(date +%s)
# Every process a suite starts carries two tags in its environment: this run's and its
# suite's. Foundation starts each child (zpubd, zpub, python) in a process group of its own,
# out of reach of timeout and of the terminal's Ctrl-C; the tags find them. The pids of the
# processes whose environment holds the line $1:
tagged='grep -lzxF "$1" /proc/[0-9]*/environ 2>/dev/null | sed "s|^/proc/\([0-9]*\)/environ\$|\1|"'
run_tag="ZPUB_TEST_RUN=$$"
# One suite: its log, its exit status, and a line when it ends.
run_suite='
    suite=$1
    start=$(date +%s)
    tag="ZPUB_TEST_SUITE=$suite.$$"
    env "$run_tag" "$tag" timeout --kill-after=10 "$limit" "$bundle" "$suite" >"$logs/$suite.log" 2>&1
    echo $? >"$logs/$suite.status"
    # What the suite left running: it hung and was killed, it crashed, a test leaked a daemon.
    left=$(sh -c "$tagged" sh "$tag" | tr "\n" " ")
    if [ -n "$left" ]; then
        kill -KILL $left 2>/dev/null
        echo "$left" >"$logs/$suite.left"
    fi
    summary=$(grep -a -E "^[[:space:]]*Executed [0-9]+ tests?," "$logs/$suite.log" | tail -n 1 | sed "s/^[[:space:]]*//")
    status=$(cat "$logs/$suite.status")
    case $status in
        124) summary="hung: killed after $limit s (TEST_SUITE_SECONDS)" ;;
        137) summary="killed: hung past $limit s (TEST_SUITE_SECONDS), or the run was interrupted" ;;
    esac
    [ -n "$left" ] && summary="$summary; left running and killed: $left"
    echo "test: ${suite#*.}: ${summary:-no summary (exit $status)} [$(($(date +%s) - start)) s]"
'
export bundle logs limit tagged run_tag
# In the background, waited for: a signal ends the wait at once (a trap would otherwise run
# only once xargs is done).
echo "$order" | xargs -P "$jobs" -I{} sh -c "$run_suite" sh {} &
runner=$!
trap 'kill $runner 2>/dev/null; pids=$(sh -c "$tagged" sh "$run_tag"); [ -n "$pids" ] && kill -KILL $pids 2>/dev/null
    rm -rf "/tmp/zpub-test-ports-$$"
    echo "test: interrupted; the suites still running were killed" >&2; exit 130' INT TERM
wait $runner
# The suites' claims on TCP ports (FreePort in the integration tests), one file a port.
rm -rf "/tmp/zpub-test-ports-$$"

tests=0
failures=0
broken=""
for suite in $order; do
    log="$logs/$suite.log"
    status=$(cat "$logs/$suite.status" 2>/dev/null || echo missing)
    line=$(grep -a -E "^[[:space:]]*Executed [0-9]+ tests?," "$log" | tail -n 1)
    count=$(echo "$line" | sed -n 's/.*Executed \([0-9]*\) tests\{0,1\},.*/\1/p')
    # "with 1 failure (", or "with 2 tests skipped and 1 failure (".
    failed=$(echo "$line" | sed -n 's/.* \([0-9]*\) failures\{0,1\} (.*/\1/p')
    tests=$((tests + ${count:-0}))
    failures=$((failures + ${failed:-0}))
    if [ "$status" != 0 ] || [ -z "$count" ]; then broken="$broken $suite"; fi
done
skipped=$(cat "$logs"/*.log | grep -a -c -E "^Test Case '.*' skipped \(")

for suite in $broken; do
    echo
    echo "==== $suite: exit $(cat "$logs/$suite.status" 2>/dev/null), its log ($logs/$suite.log; the last 600 lines) ===="
    tail -n 600 "$logs/$suite.log"
done
echo
leaky=$(for file in "$logs"/*.left; do [ -e "$file" ] && basename "$file" .left; done)
[ -n "$leaky" ] && echo "test: left processes running, killed once they ended:" $leaky
if [ "$skipped" -gt 0 ]; then
    echo "test: skipped:"
    cat "$logs"/*.log | grep -a -E "^Test Case '.*' skipped \(|: Test skipped" | sed 's/^/    /'
fi
echo "test: $tests tests, $failures failures, $skipped skipped, $(echo $order | wc -w) suites in $((($(date +%s) - started))) s, $jobs at a time"
if [ -n "$broken" ]; then
    echo "test: FAILED:$(for suite in $broken; do printf ' %s' "${suite#*.}"; done)" >&2
    exit 1
fi
