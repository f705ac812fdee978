#define _GNU_SOURCE
#include "CKernel.h"

#include <fcntl.h>
#include <linux/filter.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

int ckernel_set_drop_all_filter(int fd, int on) {
    if (!on) {
        int unused = 0;
        return setsockopt(fd, SOL_SOCKET, SO_DETACH_FILTER, &unused, sizeof unused);
    }
    // "Return 0": accept zero bytes of the packet, i.e. drop it.
    struct sock_filter drop_all[] = {BPF_STMT(BPF_RET | BPF_K, 0)};
    struct sock_fprog program = {.len = 1, .filter = drop_all};
    return setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &program, sizeof program);
}

int ckernel_lowest_free_descriptor(void) {
    // F_DUPFD returns the lowest free number >= 0, as open() and accept() would.
    int probe = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 0);
    if (probe < 0) {
        // stderr may be closed; /dev/null then.
        probe = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (probe < 0) return -1;
    }
    close(probe);
    return probe;
}

void ckernel_malloc_trim(void) { malloc_trim(0); }

int ckernel_peer(int fd, struct ckernel_peer *peer) {
    int domain = 0;
    socklen_t domain_length = sizeof domain;
    if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &domain_length) != 0) return -1;
    peer->kind = 0;
    peer->established = 0;
    peer->last_data_ms = 0;
    if (domain == AF_UNIX) {
        peer->kind = 2;
        return 0;
    }
    if (domain != AF_INET && domain != AF_INET6) return 0;
    struct tcp_info info;
    socklen_t length = sizeof info;
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &length) != 0) return -1;
    peer->kind = 1;
    peer->established = info.tcpi_state == TCP_ESTABLISHED;
    peer->last_data_ms = info.tcpi_last_data_recv;
    return 0;
}
