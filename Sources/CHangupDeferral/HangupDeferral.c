// See include/CHangupDeferral.h for why this exists.
#define _GNU_SOURCE
#include "CHangupDeferral.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/// What is known of one descriptor registered in one of libzmq's epoll sets. A descriptor is
/// in one set at a time, and each of libzmq's sets is used by one thread only (an I/O thread,
/// the reaper), so an entry is only touched by that thread; the kernel's close and open order
/// a number's reuse by another thread.
struct registration {
    /// The epoll set it is in, plus one (0: none). Atomic: `descriptor_for` reads every
    /// entry's, other threads' sets included.
    atomic_int set;
    /// Taken out of the set: at a hang-up (`PARKED_HANGUP`), until libzmq modifies its
    /// registration again; or a listener resting (`RESTING_LISTENER`), until `resting_until`.
    atomic_int parked;
    /// A resting listener goes back into its set at this time (ms, CLOCK_MONOTONIC).
    _Atomic int64_t resting_until;
    /// libzmq's data for it (a pointer of its own), to find the descriptor an event is for.
    _Atomic uint64_t data;
    /// The events libzmq asks for (EPOLLIN, EPOLLOUT): a reset is held back only from a
    /// connection that asks for neither (see `epoll_wait`).
    _Atomic uint32_t wanted;
};

enum { PARKED_HANGUP = 1, RESTING_LISTENER = 2 };

/// How long a listener whose accept() found no descriptor free stays out of its set. libzmq
/// 4.3.4's TCP listener retries at once, and its epoll set is level-triggered: with a
/// connection queued and the table full it spun on both cores, and its monitor's
/// ACCEPT_FAILED events (7,000 a second) kept the control socket from answering (a
/// walkthrough: `ulimit -n 64`, 150 connections at once). Resting, it retries 10 times a
/// second; what waits meanwhile waits in the kernel's queue.
#define LISTENER_REST_MS 100

/// Listeners resting now, per epoll set (indexed by the set's descriptor): `epoll_wait` looks
/// for those due only in a set that has some, so that a rest in one I/O thread's set costs the
/// others nothing.
static atomic_int *resting_in_set;
/// When the next resting listener of a set is due (ms, CLOCK_MONOTONIC): the set's descriptors
/// are looked through then, not at every wait (a busy I/O thread waits thousands of times a
/// second, and the look goes through every descriptor number in use).
static _Atomic int64_t *next_wake_in_set;

static atomic_int enabled;
static struct registration *registrations;
/// Descriptor numbers tracked: below the hard limit on open files (capped).
static int capacity;
/// The highest descriptor number registered so far plus one (a search bound).
static atomic_int highest;
/// Which descriptor numbers are epoll sets libzmq created (1), indexed like `registrations`.
static atomic_uchar *libzmq_sets;

int hangup_deferral_enable(void) {
    if (atomic_load(&enabled)) return 1;
    const char *setting = getenv("ZPUBD_HANGUP_DEFERRAL");
    if (setting && strcmp(setting, "off") == 0) return 0;
    struct rlimit limit;
    rlim_t wanted = 1 << 16;
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_max != RLIM_INFINITY && limit.rlim_max > wanted)
        wanted = limit.rlim_max;
    if (wanted > (1 << 21)) wanted = 1 << 21;
    // Untouched pages cost nothing: the table is as large as descriptor numbers can go.
    registrations = calloc((size_t)wanted, sizeof *registrations);
    libzmq_sets = calloc((size_t)wanted, sizeof *libzmq_sets);
    resting_in_set = calloc((size_t)wanted, sizeof *resting_in_set);
    next_wake_in_set = calloc((size_t)wanted, sizeof *next_wake_in_set);
    if (!registrations || !libzmq_sets || !resting_in_set || !next_wake_in_set) {
        free(registrations);
        free((void *)libzmq_sets);
        free((void *)resting_in_set);
        free((void *)next_wake_in_set);
        registrations = NULL;
        libzmq_sets = NULL;
        resting_in_set = NULL;
        next_wake_in_set = NULL;
        return 0;
    }
    capacity = (int)wanted;
    atomic_store(&enabled, 1);
    return 1;
}

static int raw_epoll_ctl(int set, int op, int fd, struct epoll_event *event) {
    return (int)syscall(SYS_epoll_ctl, set, op, fd, event);
}

static int tracked(int fd) { return atomic_load_explicit(&enabled, memory_order_acquire) && fd >= 0 && fd < capacity; }

static int is_libzmq_set(int set) { return tracked(set) && atomic_load_explicit(&libzmq_sets[set], memory_order_relaxed); }

/// Back in its set (by libzmq's own call or a rest's end): no longer parked or resting. Called
/// while `entry->set` still names the set it rested in.
static void unpark(struct registration *entry) {
    int set = entry->set - 1;
    if (atomic_exchange_explicit(&entry->parked, 0, memory_order_relaxed) == RESTING_LISTENER && set >= 0)
        atomic_fetch_sub_explicit(&resting_in_set[set], 1, memory_order_relaxed);
}

static int64_t now_milliseconds(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/// Records whether a new epoll set is libzmq's, by where the call came from.
static int noting_creator(int set, void *caller) {
    if (set < 0 || !tracked(set)) return set;
    Dl_info info;
    int from_libzmq = dladdr(caller, &info) != 0 && info.dli_fname && strstr(info.dli_fname, "libzmq") != NULL;
    atomic_store_explicit(&libzmq_sets[set], (unsigned char)from_libzmq, memory_order_relaxed);
    return set;
}

int epoll_create1(int flags) {
    return noting_creator((int)syscall(SYS_epoll_create1, flags), __builtin_return_address(0));
}

int epoll_create(int size) {
    if (size <= 0) {
        errno = EINVAL;
        return -1;
    }
    return noting_creator((int)syscall(SYS_epoll_create1, 0), __builtin_return_address(0));
}

int epoll_ctl(int set, int op, int fd, struct epoll_event *event) {
    if (!is_libzmq_set(set) || !tracked(fd)) return raw_epoll_ctl(set, op, fd, event);
    struct registration *entry = &registrations[fd];
    int parked_here = atomic_load_explicit(&entry->parked, memory_order_relaxed) && entry->set == set + 1;
    int result;
    switch (op) {
    case EPOLL_CTL_ADD:
        unpark(entry);
        result = raw_epoll_ctl(set, op, fd, event);
        if (result == 0) {
            atomic_store_explicit(&entry->data, event->data.u64, memory_order_relaxed);
            atomic_store_explicit(&entry->wanted, event->events, memory_order_relaxed);
            entry->set = set + 1;
            int seen = atomic_load_explicit(&highest, memory_order_relaxed);
            while (fd + 1 > seen && !atomic_compare_exchange_weak(&highest, &seen, fd + 1)) {}
        }
        return result;
    case EPOLL_CTL_MOD:
        // Back into the set: if libzmq reads it now, it reads to the end; if not, the hang-up
        // is reported again and it is parked again.
        result = raw_epoll_ctl(set, parked_here ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, fd, event);
        if (result == 0) {
            unpark(entry);
            atomic_store_explicit(&entry->data, event->data.u64, memory_order_relaxed);
            atomic_store_explicit(&entry->wanted, event->events, memory_order_relaxed);
        }
        return result;
    case EPOLL_CTL_DEL:
        if (parked_here) {
            unpark(entry);
            entry->set = 0;
            return 0;
        }
        result = raw_epoll_ctl(set, op, fd, event);
        if (result == 0) entry->set = 0;
        return result;
    default:
        return raw_epoll_ctl(set, op, fd, event);
    }
}

/// The descriptor in `set` whose registration carries `data`, or -1. Searched only for the
/// rare event that is held back.
static int descriptor_for(int set, uint64_t data) {
    int bound = atomic_load_explicit(&highest, memory_order_relaxed);
    for (int fd = 0; fd < bound; fd++) {
        struct registration *entry = &registrations[fd];
        if (entry->set == set + 1 && !atomic_load_explicit(&entry->parked, memory_order_relaxed)
            && atomic_load_explicit(&entry->data, memory_order_relaxed) == data)
            return fd;
    }
    return -1;
}

/// A listener of libzmq's whose accept() failed for want of a descriptor (EMFILE, ENFILE) leaves
/// its set for `LISTENER_REST_MS`. Called on the thread that waits on that set. Returns whether
/// `fd` is a listener in one of libzmq's sets.
static int rest_listener(int fd) {
    if (!tracked(fd)) return 0;
    struct registration *entry = &registrations[fd];
    int set = entry->set - 1;
    if (set < 0 || !is_libzmq_set(set)) return 0;
    if (atomic_load_explicit(&entry->parked, memory_order_relaxed)) return 1;
    if (raw_epoll_ctl(set, EPOLL_CTL_DEL, fd, NULL) != 0) return 1;
    int64_t until = now_milliseconds() + LISTENER_REST_MS;
    atomic_store_explicit(&entry->resting_until, until, memory_order_relaxed);
    atomic_store_explicit(&entry->parked, RESTING_LISTENER, memory_order_relaxed);
    if (atomic_fetch_add_explicit(&resting_in_set[set], 1, memory_order_relaxed) == 0)
        atomic_store_explicit(&next_wake_in_set[set], until, memory_order_relaxed);
    return 1;
}

int accept4(int fd, struct sockaddr *address, socklen_t *length, int flags) {
    int result = (int)syscall(SYS_accept4, fd, address, length, flags);
    if (result < 0 && (errno == EMFILE || errno == ENFILE)) {
        int error = errno;
        if (rest_listener(fd) && error == EMFILE) {
            // libzmq 4.3.4's ipc listener aborts the process on EMFILE (an errno_assert that
            // lists ENFILE and ECONNABORTED, not EMFILE): told that this one connection was
            // aborted, it returns, and the connection waits in the kernel's queue.
            struct sockaddr_storage local;
            socklen_t size = sizeof local;
            if (getsockname(fd, (struct sockaddr *)&local, &size) == 0 && local.ss_family == AF_UNIX)
                error = ECONNABORTED;
        }
        errno = error;
    }
    return result;
}

int accept(int fd, struct sockaddr *address, socklen_t *length) { return accept4(fd, address, length, 0); }

/// Puts the resting listeners of `set` whose time is up back in it; returns the milliseconds
/// until the next one is due, or -1 if none rests there.
static int wake_rested_listeners(int set) {
    int64_t now = now_milliseconds();
    int64_t due = atomic_load_explicit(&next_wake_in_set[set], memory_order_relaxed);
    if (now < due) return (int)(due - now);
    int64_t next = -1;
    int bound = atomic_load_explicit(&highest, memory_order_relaxed);
    for (int fd = 0; fd < bound; fd++) {
        struct registration *entry = &registrations[fd];
        if (entry->set != set + 1 || atomic_load_explicit(&entry->parked, memory_order_relaxed) != RESTING_LISTENER)
            continue;
        int64_t left = atomic_load_explicit(&entry->resting_until, memory_order_relaxed) - now;
        if (left > 0) {
            if (next < 0 || left < next) next = left;
            continue;
        }
        struct epoll_event event = {
            .events = atomic_load_explicit(&entry->wanted, memory_order_relaxed),
            .data.u64 = atomic_load_explicit(&entry->data, memory_order_relaxed),
        };
        // Not put back for want of kernel memory or epoll watches, it rests on and is tried
        // again: unparked, libzmq would believe it registered, and it would never be. Any other
        // failure (a descriptor closed under libzmq) cannot pass: it is let go.
        if (raw_epoll_ctl(set, EPOLL_CTL_ADD, fd, &event) != 0 && (errno == ENOMEM || errno == ENOSPC)) {
            atomic_store_explicit(&entry->resting_until, now + LISTENER_REST_MS, memory_order_relaxed);
            if (next < 0 || LISTENER_REST_MS < next) next = LISTENER_REST_MS;
            continue;
        }
        unpark(entry);
    }
    // None left (-1): the next rest sets it.
    atomic_store_explicit(&next_wake_in_set[set], next < 0 ? 0 : now + next, memory_order_relaxed);
    return (int)next;
}

int epoll_wait(int set, struct epoll_event *events, int most, int timeout) {
    if (is_libzmq_set(set) && atomic_load_explicit(&resting_in_set[set], memory_order_relaxed) > 0) {
        int due = wake_rested_listeners(set);
        if (due >= 0 && (timeout < 0 || due < timeout)) timeout = due;
    }
    int count = epoll_pwait(set, events, most, timeout, NULL);
    if (count <= 0 || !is_libzmq_set(set)) return count;
    int kept = 0;
    for (int index = 0; index < count; index++) {
        uint32_t what = events[index].events;
        if ((what & (EPOLLHUP | EPOLLIN)) == (EPOLLHUP | EPOLLIN)) {
            // Read, not hung up: libzmq's loop calls the engine once for the hang-up and
            // again for the input, and when the first call fills the queue and stops input,
            // the second meets the stopped input and takes it for an error. Read alone, the
            // engine meets the end of the stream as read() returning 0, after the data, or a
            // reset (EPOLLERR: the peer closed with data of ours unread) as read() failing,
            // after the data too: Linux hands out what a socket holds before its error.
            events[index].events = what & ~(uint32_t)(EPOLLHUP | EPOLLERR);
        } else if ((what & EPOLLHUP) && !(what & EPOLLIN)) {
            // EPOLLIN is missing only when libzmq is not reading the descriptor (a hung-up
            // socket is always readable): the case libzmq takes for an error. A reset
            // (EPOLLERR) is held back only from a connection that asks for nothing: one that
            // asks for EPOLLOUT may be connecting, and learns that it failed from this event.
            int fd = descriptor_for(set, events[index].data.u64);
            uint32_t wanted = fd >= 0 ? atomic_load_explicit(&registrations[fd].wanted, memory_order_relaxed) : 0;
            if ((what & EPOLLERR) && (wanted & (EPOLLIN | EPOLLOUT))) fd = -1;
            if (fd >= 0 && raw_epoll_ctl(set, EPOLL_CTL_DEL, fd, NULL) == 0) {
                atomic_store_explicit(&registrations[fd].parked, PARKED_HANGUP, memory_order_relaxed);
                // Its EPOLLOUT too: nothing written to a peer that hung up arrives.
                continue;
            }
        }
        events[kept++] = events[index];
    }
    return kept;
}
