// Linux details zpubd needs that Swift's Glibc module does not expose cleanly: a socket filter
// that drops every packet, the lowest free descriptor number, and malloc_trim (a GNU
// extension). Used by ZPubBroker only; never part of a public API.
#ifndef ZPUB_CKERNEL_H
#define ZPUB_CKERNEL_H

#include <stddef.h>

/// Attaches (on != 0) or detaches a classic BPF program that drops every packet on `fd`.
/// On a listening TCP socket the kernel then drops incoming SYNs. Returns 0 or -1 with errno.
int ckernel_set_drop_all_filter(int fd, int on);

/// The lowest descriptor number not in use (what the next open() or accept() would get),
/// or -1 with errno when none is free below the soft limit.
int ckernel_lowest_free_descriptor(void);

/// Returns free heap memory at the top of glibc's arenas to the system.
void ckernel_malloc_trim(void);

/// What the kernel knows of a TCP connection's peer (TCP_INFO), for telling a peer cut off by
/// a partition from one that is merely slow to read.
struct ckernel_tcp_peer {
    /// The connection is ESTABLISHED.
    int established;
    /// Segments sent and not yet acknowledged.
    unsigned int unacknowledged;
    /// Milliseconds since the last acknowledgement arrived.
    unsigned int last_ack_ms;
};

/// Fills `peer` for the TCP socket `fd`. Returns 0, or -1 with errno (EOPNOTSUPP and the like
/// for a socket that is not TCP, e.g. ipc's Unix sockets).
int ckernel_tcp_peer(int fd, struct ckernel_tcp_peer *peer);

#endif
