# zpub: `make run` starts the broker with its embedded defaults, `make test` runs every test.
# Both install what they need first (Debian packages, as root or through sudo).

PREFIX ?= /usr/local
DESTDIR ?=
BINDIR ?= $(PREFIX)/bin
# systemd reads units from /usr/local/lib/systemd/system as well as /lib/systemd/system.
UNITDIR ?= $(PREFIX)/lib/systemd/system
SYSCONFDIR ?= /etc
SWIFT ?= swift
ARGS ?=

# Build: libzmq and libsystemd headers, pkg-config. Tests: pyzmq (an independent client),
# PHP with its zmq extension (the README examples), systemd's tools (systemd-analyze,
# systemd-socket-activate).
BUILD_PACKAGES = libzmq3-dev libsystemd-dev pkg-config
TEST_PACKAGES = python3-zmq php-cli php-zmq systemd

.PHONY: all deps test-deps build release run test format lint clean install install-files uninstall

all: build

deps:
	@./scripts/install-deps.sh $(BUILD_PACKAGES)

test-deps:
	@./scripts/install-deps.sh $(BUILD_PACKAGES) $(TEST_PACKAGES)

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

# Runs zpubd in the foreground with its embedded defaults (loopback only). Extra flags: make run ARGS="--log-level debug"
run: release
	./.build/release/zpubd $(ARGS)

test: test-deps lint
	$(SWIFT) build --build-tests
	$(SWIFT) test --disable-swift-testing

format:
	$(SWIFT) format --in-place --recursive Package.swift Sources Tests

# Fails on code that `make format` would change.
lint:
	$(SWIFT) format lint --strict --recursive Package.swift Sources Tests

clean:
	rm -rf .build

# Installs the release binaries, the systemd units (pointing at $(BINDIR)) and the sample
# configuration, which never overwrites an existing /etc/zpub/zpubd.conf.
UNITS = zpubd.service zpubd-activated.service zpubd.socket

# (install-files does the copying from BINARIES, so tests can install a debug build.)
BINARIES ?= .build/release

install: release install-files

install-files:
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSCONFDIR)/zpub
	install -m 0755 $(BINARIES)/zpubd $(BINARIES)/zpub $(DESTDIR)$(BINDIR)/
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
	for unit in $(UNITS); do rm -f $(DESTDIR)$(UNITDIR)/$$unit; done
	@if cmp -s etc/zpub/zpubd.conf $(DESTDIR)$(SYSCONFDIR)/zpub/zpubd.conf; then \
	  rm -f $(DESTDIR)$(SYSCONFDIR)/zpub/zpubd.conf; rmdir $(DESTDIR)$(SYSCONFDIR)/zpub 2>/dev/null || true; \
	elif [ -e $(DESTDIR)$(SYSCONFDIR)/zpub/zpubd.conf ]; then \
	  echo "keeping $(DESTDIR)$(SYSCONFDIR)/zpub/zpubd.conf: it was changed"; \
	fi
	@if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi
