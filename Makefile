# zpub: `make run` starts the broker with its embedded defaults, `make test` runs every test.
# Both install what they need first (Debian packages, as root or through sudo).

PREFIX ?= /usr/local
DESTDIR ?=
SWIFT ?= swift
ARGS ?=

# Build: libzmq and libsystemd headers, pkg-config. Tests: pyzmq (an independent client),
# PHP with its zmq extension (the README examples), systemd's tools (systemd-analyze,
# systemd-socket-activate).
BUILD_PACKAGES = libzmq3-dev libsystemd-dev pkg-config
TEST_PACKAGES = python3-zmq php-cli php-zmq systemd

.PHONY: all deps test-deps build release run test format lint clean

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
