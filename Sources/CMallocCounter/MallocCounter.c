// Counts every heap allocation a process makes, for the test that proves zpubd's forwarding
// loop allocates nothing per message.
//
// Built as libMallocCounter.so and loaded with LD_PRELOAD: its malloc and friends then take
// precedence over glibc's for the whole process (Swift runtime, libzmq, everything). Each one
// counts the call and hands it to glibc's own implementation (__libc_malloc and friends, which
// glibc exports for exactly this), so there is no dlsym and no recursion at start-up. `free` is
// left alone: glibc's free releases what __libc_* allocated.
//
// At process exit, if ZPUB_MALLOC_COUNT_FILE names a file, the count is written there in
// decimal. Only raw system calls are used then, because stdio itself may allocate.
#include "MallocCounter.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <unistd.h>

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t count, size_t size);
extern void *__libc_realloc(void *pointer, size_t size);
extern void *__libc_memalign(size_t alignment, size_t size);

static atomic_ulong allocations;

static inline void count_one(void) {
    atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed);
}

unsigned long zpub_malloc_count(void) {
    return atomic_load_explicit(&allocations, memory_order_relaxed);
}

void *malloc(size_t size) {
    count_one();
    return __libc_malloc(size);
}

void *calloc(size_t count, size_t size) {
    count_one();
    return __libc_calloc(count, size);
}

void *realloc(void *pointer, size_t size) {
    count_one();
    return __libc_realloc(pointer, size);
}

void *memalign(size_t alignment, size_t size) {
    count_one();
    return __libc_memalign(alignment, size);
}

void *aligned_alloc(size_t alignment, size_t size) {
    count_one();
    return __libc_memalign(alignment, size);
}

int posix_memalign(void **result, size_t alignment, size_t size) {
    count_one();
    // posix_memalign's contract: a power of two that is a multiple of sizeof(void *).
    if (alignment < sizeof(void *) || (alignment & (alignment - 1)) != 0) return EINVAL;
    void *pointer = __libc_memalign(alignment, size);
    if (pointer == NULL) return ENOMEM;
    *result = pointer;
    return 0;
}

__attribute__((destructor)) static void zpub_malloc_counter_report(void) {
    const char *path = getenv("ZPUB_MALLOC_COUNT_FILE");
    if (path == NULL || path[0] == '\0') return;
    char digits[32];
    size_t length = 0;
    unsigned long value = zpub_malloc_count();
    do {
        digits[sizeof digits - 1 - length] = (char)('0' + value % 10);
        value /= 10;
        length += 1;
    } while (value != 0 && length < sizeof digits - 1);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return;
    ssize_t ignored = write(fd, digits + sizeof digits - length, length);
    (void)ignored;
    close(fd);
}
