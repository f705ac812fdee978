#!/bin/sh
# Builds libzmq 4.3.4 from source into a directory of its own, with a patch (by default the
# pipe trace beside this script), for running zpubd or pyzmq against it:
#
#   scripts/experiments/build-libzmq.sh SOURCE OUT [PATCH]
#   LD_LIBRARY_PATH=OUT .build/debug/zpubd ...      (or /usr/bin/python3 probe.py)
#
# SOURCE is a libzmq 4.3.4 tree (git archive v4.3.4 of github.com/zeromq/libzmq; its src/ is
# what is built); it is copied, not changed. No cmake or autotools needed: platform.hpp is
# written here with what Debian 12's libzmq5 has (epoll, eventfd, ipc, libsodium CURVE, draft
# API), less WebSocket, PGM and NORM. Some 40 s on 2 cores.
#
# The pipe trace (libzmq-pipe-trace.patch) prints to stderr, as "ZMQDEBUG ...":
# - when a ROUTER cannot write to a peer's pipe: its messages written, the reads its peer last
#   reported, the pipe's high-water mark and state, then the pipe's last 64 events (w: written,
#   r: read, e: read found nothing, R: input reactivated, A: the peer's read report taken in);
# - when an XPUB/PUB (dist) cannot write to a subscriber's pipe: the same counts, with what the
#   subscriber's side has truly read (set ZMQDEBUG_NORING=1 to leave out the events).
# It found the lost control reply of 2026-12-06 (docs/control-protocol.md, "Replies are never
# lost to a stale count") and measured XPUB's half-queue steps (docs/reliability.md).
set -eu
source=$1
out=$2
patch=${3:-$(dirname "$0")/libzmq-pipe-trace.patch}
mkdir -p "$out/src"
cp -r "$source/src/." "$out/src/"
cp -r "$source/include" "$out/"
if [ "$patch" != none ]; then
    patch=$(cd "$(dirname "$patch")" && pwd)/$(basename "$patch")
    (cd "$out" && patch -p1 < "$patch")
fi
cat > "$out/src/platform.hpp" <<'PLATFORM'
#ifndef __ZMQ_PLATFORM_HPP_INCLUDED__
#define __ZMQ_PLATFORM_HPP_INCLUDED__
#define ZMQ_USE_CV_IMPL_STL11
#define ZMQ_IOTHREAD_POLLER_USE_EPOLL
#define ZMQ_IOTHREAD_POLLER_USE_EPOLL_CLOEXEC
#define ZMQ_POLL_BASED_ON_POLL
#define ZMQ_CACHELINE_SIZE 64
#define HAVE_FORK
#define HAVE_CLOCK_GETTIME
#define HAVE_MKDTEMP
#define ZMQ_HAVE_UIO
#define ZMQ_HAVE_NOEXCEPT
#define ZMQ_HAVE_EVENTFD
#define ZMQ_HAVE_EVENTFD_CLOEXEC
#define ZMQ_HAVE_IFADDRS
#define ZMQ_HAVE_SO_BINDTODEVICE
#define ZMQ_HAVE_SO_PEERCRED
#define ZMQ_HAVE_O_CLOEXEC
#define ZMQ_HAVE_SOCK_CLOEXEC
#define ZMQ_HAVE_SO_KEEPALIVE
#define ZMQ_HAVE_SO_PRIORITY
#define ZMQ_HAVE_TCP_KEEPCNT
#define ZMQ_HAVE_TCP_KEEPIDLE
#define ZMQ_HAVE_TCP_KEEPINTVL
#define ZMQ_HAVE_PTHREAD_SETNAME_2
#define ZMQ_HAVE_PTHREAD_SET_AFFINITY
#define HAVE_ACCEPT4
#define HAVE_STRNLEN
#define ZMQ_HAVE_IPC
#define ZMQ_HAVE_CURVE
#define ZMQ_USE_LIBSODIUM
#define HAVE_IF_NAMETOINDEX
#define ZMQ_HAVE_LINUX
#endif
PLATFORM
cat > "$out/Makefile" <<'MAKE'
SRC := $(filter-out src/ws_% src/wss_%,$(wildcard src/*.cpp))
OBJ := $(SRC:.cpp=.o)
CXXFLAGS := -O2 -g -fPIC -std=gnu++11 -Isrc -Iinclude -DZMQ_BUILD_DRAFT_API -D_REENTRANT -D_THREAD_SAFE
libzmq.so.5: $(OBJ)
	$(CXX) -shared -Wl,-soname,libzmq.so.5 -o $@ $(OBJ) -lsodium -lpthread -lrt
MAKE
make -C "$out" -j"$(nproc)" >"$out/build.log" 2>&1 || { tail -20 "$out/build.log"; exit 1; }
echo "built $out/libzmq.so.5: run with LD_LIBRARY_PATH=$out"
