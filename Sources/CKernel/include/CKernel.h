// Linux details zpubd needs that Swift's Glibc module does not expose cleanly: a socket filter
// that drops every packet, the lowest free descriptor number, malloc_trim (a GNU extension),
// and what TCP_INFO says of a connection's peer. Used by ZPubBroker only; never part of a public API.
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

/// What the kernel knows of a connection's peer, for telling a peer cut off by a partition from
/// one that is merely slow to read.
struct ckernel_peer {
    /// 1: a TCP connection (the fields below are filled, from TCP_INFO); 2: a Unix socket (the
    /// peer is on this host); 0: anything else.
    int kind;
    /// TCP: the connection is ESTABLISHED.
    int established;
    /// TCP: milliseconds since data (not a bare acknowledgement) last arrived from the peer.
    unsigned int last_data_ms;
};

/// Fills `peer` for the socket `fd`. Returns 0, or -1 with errno (not a socket, closed).
int ckernel_peer(int fd, struct ckernel_peer *peer);

#endif
