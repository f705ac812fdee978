# zpub: `make run` starts the broker with its embedded defaults, `make test` runs every test.
# Both install what they need first (Debian packages, as root or through sudo).

PREFIX ?= /usr/local
DESTDIR ?=
BINDIR ?= $(PREFIX)/bin
# systemd reads units from /usr/local/lib/systemd/system as well as /lib/systemd/system.
UNITDIR ?= $(PREFIX)/lib/systemd/system
SYSCONFDIR ?= /etc
# Data that is not configuration: the nftables guard for the XPUB port (docs/reliability.md).
DATADIR ?= $(PREFIX)/share
SWIFT ?= swift
ARGS ?=

# Packaging (make deb, and the package tests): dpkg-deb and dpkg-shlibdeps, lintian, groff for
# man pages. The tests also use tmux (a real terminal for `zpub top`).
PACKAGE_PACKAGES = dpkg-dev lintian groff-base man-db
# Build: libzmq, libsystemd and SQLite headers, pkg-config, binutils (`make release` checks
# zpubd's dynamic symbols with nm). Tests: pyzmq (an independent client),
# PHP with its zmq extension (the README examples), systemd's tools (systemd-analyze,
# systemd-socket-activate).
BUILD_PACKAGES = libzmq3-dev libsystemd-dev libsqlite3-dev libgcrypt20-dev pkg-config binutils
TEST_PACKAGES = python3-zmq php-cli php-zmq systemd $(PACKAGE_PACKAGES) tmux iproute2 nftables $(HTTP_TEST_PACKAGES)
# The HTTP gateway's tests (docs/http.md): a WebSocket client, a Prometheus text parser, headless
# Chromium, curl (shell and PHP), PyJWT to sign tokens, openssl to make keys and certificates.
HTTP_TEST_PACKAGES = python3-websocket python3-prometheus-client chromium curl php-curl python3-jwt python3-cryptography openssl

.PHONY: all deps test-deps build release run test format lint clean install install-files uninstall fuzz sanitize soak soak-memory

all: build

deps:
	@./scripts/install-deps.sh $(BUILD_PACKAGES)

test-deps:
	@./scripts/install-deps.sh $(BUILD_PACKAGES) $(TEST_PACKAGES)

build: deps
	$(SWIFT) build

# Release binaries link the Swift runtime statically, as the Debian package does: they run
# without the toolchain's libraries, and zpubd keeps ~3 MiB less resident (docs/performance.md).
RELEASE_BUILD = $(SWIFT) build -c release --static-swift-stdlib

release: deps
	$(RELEASE_BUILD)
	@# libzmq must bind to zpubd's epoll and accept wrappers (Sources/CHangupDeferral), which a
	@# link that exports nothing of the executable would silently undo.
	@test "$$(nm -D --defined-only .build/release/zpubd | grep -cE ' (epoll_(create1?|ctl|wait)|accept4?)$$')" = 6 || \
		{ echo "zpubd exports no epoll or accept wrappers: libzmq would drop what ipc peers send before they hang up, and abort out of descriptors (Package.swift's release link)" >&2; exit 1; }

# Runs zpubd in the foreground with its embedded defaults (loopback only). Extra flags: make run ARGS="--log-level debug"
run: release
	./.build/release/zpubd $(ARGS)

test: test-deps lint
	./scripts/fuzz.sh 10
	$(SWIFT) build --build-tests
	SWIFT="$(SWIFT)" ./scripts/test.sh

# The fault tests at full size, with their ratio assertions (docs/reliability.md), then a
# longer fuzz run.
soak: test-deps
	$(SWIFT) build --build-tests
	ZPUB_SOAK=1 $(SWIFT) test --disable-swift-testing --filter 'FaultTests|NetworkFaultTests'
	./scripts/fuzz.sh 600

# zpubd's memory over a long run with every table churning (history evicting, last values,
# topics at their limit, subscribers and SSE clients coming and going, admin requests): RSS
# every 10 s, and a failure if anonymous memory grows by more than 10% after the first
# quarter. SOAK_SECONDS long (default 900).
SOAK_SECONDS ?= 900
soak-memory: deps test-deps
	$(RELEASE_BUILD)
	/usr/bin/python3 scripts/memory-soak.py $(SOAK_SECONDS)

# libFuzzer with AddressSanitizer over the pure parsers, FUZZ_SECONDS per target.
FUZZ_SECONDS ?= 300
fuzz: deps
	./scripts/fuzz.sh $(FUZZ_SECONDS)

# The whole test suite under ThreadSanitizer, then AddressSanitizer (zpubd included: the tests
# start the instrumented build). LeakSanitizer flags XCTest's own allocations, hence the
# suppressions file.
sanitize: test-deps
	TSAN_OPTIONS=halt_on_error=1 $(SWIFT) test --disable-swift-testing --sanitize=thread --scratch-path .build-tsan
	LSAN_OPTIONS=suppressions=$(CURDIR)/scripts/lsan.supp $(SWIFT) test --disable-swift-testing --sanitize=address --scratch-path .build-asan

format:
	$(SWIFT) format --in-place --recursive Package.swift Sources Tests Fuzz

# Fails on code that `make format` would change.
lint:
	$(SWIFT) format lint --strict --recursive Package.swift Sources Tests Fuzz

clean:
	rm -rf .build

# Installs the release binaries, the systemd units (pointing at $(BINDIR)) and the sample
# configuration, which never overwrites an existing /etc/zpub/zpubd.conf.
UNITS = zpubd.service zpubd-activated.service zpubd.socket zpubd-pull.socket zpubd-xsub.socket zpubd-xpub.socket

# (install-files does the copying from BINARIES, so tests can install a debug build.)
BINARIES ?= .build/release

install: release install-files

install-files:
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSCONFDIR)/zpub $(DESTDIR)$(DATADIR)/zpub
	install -m 0755 $(BINARIES)/zpubd $(BINARIES)/zpub $(DESTDIR)$(BINDIR)/
	install -m 0644 examples/nftables/xpub-guard.nft $(DESTDIR)$(DATADIR)/zpub/
	for unit in $(UNITS); do \
	  sed -e 's|/usr/local/bin/|$(BINDIR)/|g' -e 's|/etc/zpub/|$(SYSCONFDIR)/zpub/|g' systemd/$$unit > $(DESTDIR)$(UNITDIR)/$$unit; \
	  chmod 0644 $(DESTDIR)$(UNITDIR)/$$unit; \
	done
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/zpub/zpubd.conf ]; then \
	  echo "keeping the existing $(DESTDIR)$(SYSCONFDIR)/zpub/zpubd.conf"; \
	else \
	  install -m 0644 etc/zpub/zpubd.conf $(DESTDIR)$(SYSCONFDIR)/zpub/zpubd.conf; \
	fi
	@if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi
	@echo "installed; start with: systemctl enable --now zpubd (or zpubd.socket)"

# Removes what install put there, except a configuration file that differs from the sample.
uninstall:
	rm -f $(DESTDIR)$(BINDIR)/zpubd $(DESTDIR)$(BINDIR)/zpub
	rm -f $(DESTDIR)$(DATADIR)/zpub/xpub-guard.nft
	rmdir $(DESTDIR)$(DATADIR)/zpub 2>/dev/null || true
	for unit in $(UNITS); do rm -f $(DESTDIR)$(UNITDIR)/$$unit; done
	@if cmp -s etc/zpub/zpubd.conf $(DESTDIR)$(SYSCONFDIR)/zpub/zpubd.conf; then \
	  rm -f $(DESTDIR)$(SYSCONFDIR)/zpub/zpubd.conf; rmdir $(DESTDIR)$(SYSCONFDIR)/zpub 2>/dev/null || true; \
	elif [ -e $(DESTDIR)$(SYSCONFDIR)/zpub/zpubd.conf ]; then \
	  echo "keeping $(DESTDIR)$(SYSCONFDIR)/zpub/zpubd.conf: it was changed"; \
	fi
	@if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi

# Benchmarks (docs/performance.md): zpubd against zmq_proxy, a plain poll loop and a direct link,
# over TCP on loopback. `bench` runs the full matrix (~10 min), `bench-quick` a subset (~2 min).
# Each writes its report to .build/bench/. Unpinned by default (the forwarder is the
# bottleneck and its CPU per delivery shows); make bench ARGS="--pin" pins clients and forwarder.
.PHONY: bench bench-quick bench-saturated bench-gateway bench-multicast bench-cache

bench: deps
	$(RELEASE_BUILD)
	./.build/release/zpub-bench run --output .build/bench/full.md $(ARGS)

# Each forwarder made the bottleneck (~3 min): held, a backlog queued in front of it with
# unlimited queues, then let go; its CPU per delivery from the first message queued to the
# last delivered (docs/performance.md, "Saturated"). `bench` and `bench-quick` include it too.
bench-saturated: deps
	$(RELEASE_BUILD)
	./.build/release/zpub-bench saturated --output .build/bench/saturated.md $(ARGS)

# The last-value cache's work on the forwarding loop that grows with the cache, not the traffic
# (a subscription's scan, expiry, a pair's pages, SNAPSHOT), at 10k, 100k and 1M values (~1 min;
# docs/performance.md, "Last-value cache at scale").
bench-cache: deps
	$(RELEASE_BUILD)
	./.build/release/zpub-bench cache --output .build/bench/cache.md $(ARGS)

# The HTTP gateway's fan-out: server CPU per delivered message and latency, SSE and WebSocket,
# 100, 500 and 1,000 clients, each message written at once and with write_delay_ms = 25; and
# Pushpin (Debian's `pushpin`) in the same run where it is installed (docs/performance.md,
# "HTTP gateway fan-out").
GATEWAY_BENCH = /usr/bin/python3 scripts/gateway-fanout-cost.py
bench-gateway: deps
	$(RELEASE_BUILD)
	@command -v pushpin >/dev/null || echo "pushpin is not installed (apt-get install pushpin): measuring zpubd only"
	for clients in 100 500 1000; do \
	  for kind in sse ws; do for delay in 0 25; do \
	    $(GATEWAY_BENCH) $$clients 2000 200 $$kind zpubd $$delay || exit 1; \
	  done; done; \
	  if command -v pushpin >/dev/null; then $(GATEWAY_BENCH) $$clients 2000 200 sse pushpin || exit 1; fi; \
	done

# Fan-out over TCP and over multicast (epgm): the broker's CPU per message with 1 to 512
# receivers, zmq_proxy beside it (docs/performance.md, "Multicast"). Root: a network namespace.
bench-multicast: deps test-deps
	$(RELEASE_BUILD)
	$$( [ "$$(id -u)" = 0 ] || echo sudo ) /usr/bin/python3 scripts/multicast-fanout-cost.py $(ARGS)

bench-quick: deps
	$(RELEASE_BUILD)
	./.build/release/zpub-bench run --quick --output .build/bench/quick.md $(ARGS)

# Packaging (packaging/, man/): a Debian package of the release build, man pages, completions.
# `deb` builds with the Swift runtime linked statically, in its own scratch path so that it
# never relinks the binaries of .build/release, then checks the package with lintian.
.PHONY: deb man completions

DEB_BUILD = $(SWIFT) build -c release --static-swift-stdlib --scratch-path .build-deb -Xlinker -z -Xlinker now

deb: deps
	@./scripts/install-deps.sh $(PACKAGE_PACKAGES)
	$(DEB_BUILD) --product zpubd
	$(DEB_BUILD) --product zpub
	./scripts/check-release-link.sh .build-deb/release/zpubd .build-deb/release/zpub
	./packaging/build-deb.sh .build-deb/release .build/deb
	lintian --fail-on error,warning --suppress-tags-from-file packaging/deb/lintian-kept .build/deb/zpub_*.deb

# Regenerates man/zpub.1 and man/zpubd.8 from the argument parsers (commit the result);
# man/zpubd.conf.5 is written by hand.
man: build
	$(SWIFT) build --product generate-manual
	./packaging/generate-man.sh "$$($(SWIFT) build --show-bin-path)/generate-manual" "$$($(SWIFT) build --show-bin-path)" man

# Writes bash, zsh and fish completions to .build/completions (the package installs its own).
completions: build
	mkdir -p .build/completions
	for program in zpubd zpub; do \
	  ./.build/debug/$$program --generate-completion-script bash | sed -e '1{/^#!/d}' > .build/completions/$$program.bash; \
	  ./.build/debug/$$program --generate-completion-script zsh > .build/completions/_$$program; \
	  ./.build/debug/$$program --generate-completion-script fish > .build/completions/$$program.fish; \
	done
