/*
 * An experiment, not part of the build: does LMDB's file stay bounded, and its writer's cost
 * flat, when it holds zpubd's history blocks under churn? docs/history.md names this as what
 * a switch from SQLite would have to show first: LMDB keeps a value larger than half a page
 * in one run of contiguous overflow pages, and blocks of every size, evicted at the front and
 * written at the back, may fragment its free list so that the file grows and each allocation
 * searches longer.
 *
 * The writer does what zpubd's history writer would do with LMDB: one transaction per batch,
 * one block per batch (a log-uniform size from 64 bytes to 256 KiB, and a full 256 KiB block
 * one time in five, as under a steady load), appended under a big-endian sequence key with
 * MDB_APPEND | MDB_RESERVE, the oldest blocks deleted in the same transaction while the
 * blocks hold more than MAX_MIB, and a small meta record rewritten. Reader threads replay
 * from random positions, as catching-up clients do, each holding its read transaction for
 * HOLD_MS, which keeps the pages it sees from being reused meanwhile.
 *
 * Every GiB written it prints the file's high-water mark (the last page used), the free list
 * (pages, and its longest run of contiguous pages), and the writer's CPU per MiB and slowest
 * commit in that GiB. A bounded file and a flat CPU per MiB are what a switch needs.
 *
 *   apt-get install liblmdb-dev
 *   cc -O2 -pthread scripts/experiments/lmdb-churn.c -o /tmp/lmdb-churn -llmdb
 *   mkdir -p /dev/shm/churn && /tmp/lmdb-churn /dev/shm/churn 64 100 2 20
 *
 * On tmpfs the disk is out of the picture: what it shows is LMDB's allocation, not I/O.
 */
#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { smallest = 64, largest = 256 * 1024 };

static MDB_env *env;
static MDB_dbi blocks, meta;
static _Atomic uint64_t oldest_key = 1, newest_key = 0;
static _Atomic int stopping = 0;
static _Atomic uint64_t blocks_read = 0, bad_blocks = 0;
static int hold_ms;

static void check(int rc, const char *what) {
    if (rc != 0) {
        fprintf(stderr, "%s: %s\n", what, mdb_strerror(rc));
        exit(1);
    }
}

static double seconds(clockid_t clock) {
    struct timespec now;
    clock_gettime(clock, &now);
    return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

/* xorshift: each thread its own sequence, no locks. */
static uint64_t next_random(uint64_t *state) {
    uint64_t x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *state = x;
}

static size_t block_size(uint64_t *random) {
    if (next_random(random) % 5 == 0) return largest;
    double fraction = (double)(next_random(random) % 1000000) / 1e6;
    double logarithm = __builtin_log(smallest) + fraction * (__builtin_log(largest) - __builtin_log(smallest));
    return (size_t)__builtin_exp(logarithm);
}

static void *replay(void *argument) {
    uint64_t random = (uint64_t)(uintptr_t)argument * 2654435761u + 1;
    while (!atomic_load(&stopping)) {
        uint64_t oldest = atomic_load(&oldest_key), newest = atomic_load(&newest_key);
        if (newest <= oldest) {
            usleep(1000);
            continue;
        }
        MDB_txn *txn;
        MDB_cursor *cursor;
        check(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), "begin a read transaction");
        check(mdb_cursor_open(txn, blocks, &cursor), "open a cursor");
        uint64_t start = __builtin_bswap64(oldest + next_random(&random) % (newest - oldest));
        MDB_val key = {sizeof start, &start}, value;
        size_t bytes = 0;
        int rc = mdb_cursor_get(cursor, &key, &value, MDB_SET_RANGE);
        for (int count = 0; rc == 0 && count < 1000 && bytes < 4 << 20; count++) {
            uint64_t stored;
            memcpy(&stored, value.mv_data, sizeof stored);
            if (stored != *(uint64_t *)key.mv_data) atomic_fetch_add(&bad_blocks, 1);
            bytes += value.mv_size;
            atomic_fetch_add(&blocks_read, 1);
            rc = mdb_cursor_get(cursor, &key, &value, MDB_NEXT);
        }
        if (rc != 0 && rc != MDB_NOTFOUND) check(rc, "read a block");
        if (hold_ms > 0) usleep((useconds_t)hold_ms * 1000);
        mdb_cursor_close(cursor);
        mdb_txn_abort(txn);
        usleep(5000);
    }
    return NULL;
}

static int ascending(const void *a, const void *b) {
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

struct free_list {
    size_t pages, longest_run;
};

/* The free list as committed: FREE_DBI (0) maps a transaction id to the pages it freed
 * (an MDB_IDL: the count, then the page numbers). */
static struct free_list read_free_list(void) {
    static size_t *numbers;
    static size_t capacity;
    struct free_list result = {0, 0};
    MDB_txn *txn;
    MDB_cursor *cursor;
    check(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), "begin a read transaction");
    check(mdb_cursor_open(txn, 0, &cursor), "open the free list");
    MDB_val key, value;
    size_t count = 0;
    int rc = mdb_cursor_get(cursor, &key, &value, MDB_FIRST);
    while (rc == 0) {
        const size_t *list = value.mv_data;
        if (count + list[0] > capacity) {
            capacity = (count + list[0]) * 2;
            numbers = realloc(numbers, capacity * sizeof *numbers);
        }
        memcpy(numbers + count, list + 1, list[0] * sizeof *numbers);
        count += list[0];
        rc = mdb_cursor_get(cursor, &key, &value, MDB_NEXT);
    }
    mdb_cursor_close(cursor);
    mdb_txn_abort(txn);
    qsort(numbers, count, sizeof *numbers, ascending);
    size_t run = 0;
    for (size_t i = 0; i < count; i++) {
        run = i > 0 && numbers[i] == numbers[i - 1] + 1 ? run + 1 : 1;
        if (run > result.longest_run) result.longest_run = run;
    }
    result.pages = count;
    return result;
}

int main(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr,
                "usage: %s DIRECTORY MAX_MIB TOTAL_GIB READERS HOLD_MS [writemap]\n"
                "  keeps MAX_MIB of blocks, writes TOTAL_GIB in all, with READERS replaying,\n"
                "  each holding its read transaction for HOLD_MS\n",
                argv[0]);
        return 2;
    }
    const char *directory = argv[1];
    size_t max_bytes = (size_t)atol(argv[2]) << 20;
    double total = atof(argv[3]) * (double)(1 << 30);
    int readers = atoi(argv[4]);
    hold_ms = atoi(argv[5]);
    unsigned flags = MDB_NOSYNC | (argc > 6 && strcmp(argv[6], "writemap") == 0 ? MDB_WRITEMAP : 0);
    size_t map_size = 4 * max_bytes + (64 << 20);

    check(mdb_env_create(&env), "create the environment");
    check(mdb_env_set_mapsize(env, map_size), "set the map size");
    check(mdb_env_set_maxdbs(env, 2), "set the number of databases");
    check(mdb_env_set_maxreaders(env, (unsigned)readers + 8), "set the number of readers");
    check(mdb_env_open(env, directory, flags, 0644), "open the environment");
    MDB_txn *txn;
    check(mdb_txn_begin(env, NULL, 0, &txn), "begin");
    check(mdb_dbi_open(txn, "blocks", MDB_CREATE, &blocks), "open blocks");
    check(mdb_dbi_open(txn, "meta", MDB_CREATE, &meta), "open meta");
    check(mdb_txn_commit(txn), "commit");

    pthread_t threads[64];
    for (int i = 0; i < readers && i < 64; i++) pthread_create(&threads[i], NULL, replay, (void *)(uintptr_t)(i + 1));

    size_t queue_capacity = max_bytes / smallest + 16;
    size_t *sizes = calloc(queue_capacity, sizeof *sizes); /* by key, modulo the capacity */
    size_t kept = 0;
    uint64_t random = 88172645463325252u, key_number = 0;
    double written = 0, next_report = 1 << 30, started = seconds(CLOCK_MONOTONIC);
    double cpu_at_report = seconds(CLOCK_THREAD_CPUTIME_ID), written_at_report = 0, slowest = 0;
    MDB_envinfo info;
    MDB_stat stat;
    mdb_env_stat(env, &stat);
    printf("page %u B, map %zu MiB, keeping %zu MiB of blocks, %d readers holding %d ms, %s\n", stat.ms_psize,
           map_size >> 20, max_bytes >> 20, readers, hold_ms, flags & MDB_WRITEMAP ? "writemap" : "no writemap");
    printf("%8s %8s %10s %11s %11s %12s %10s %10s\n", "GiB", "s", "high MiB", "free pages", "longest run",
           "CPU ms/GiB", "slowest ms", "replayed");
    fflush(stdout);
    while (written < total) {
        double begun = seconds(CLOCK_MONOTONIC);
        size_t size = block_size(&random);
        uint64_t key_be = __builtin_bswap64(++key_number);
        MDB_val key = {sizeof key_be, &key_be}, value = {size, NULL};
        check(mdb_txn_begin(env, NULL, 0, &txn), "begin");
        int rc = mdb_put(txn, blocks, &key, &value, MDB_APPEND | MDB_RESERVE);
        if (rc == MDB_MAP_FULL) {
            printf("MAP FULL after %.1f GiB with %zu MiB kept: the free list could not hold a block of %zu B\n",
                   written / (1 << 30), kept >> 20, size);
            return 1;
        }
        check(rc, "append a block");
        memcpy(value.mv_data, &key_be, sizeof key_be);
        memset((char *)value.mv_data + sizeof key_be, 'x', size - sizeof key_be);
        sizes[key_number % queue_capacity] = size;
        kept += size;
        uint64_t oldest = atomic_load(&oldest_key);
        while (kept > max_bytes) {
            uint64_t old_be = __builtin_bswap64(oldest);
            MDB_val old = {sizeof old_be, &old_be};
            check(mdb_del(txn, blocks, &old, NULL), "evict a block");
            kept -= sizes[oldest % queue_capacity];
            oldest++;
        }
        uint64_t record[2] = {oldest, key_number};
        MDB_val meta_key = {4, "last"}, meta_value = {sizeof record, record};
        check(mdb_put(txn, meta, &meta_key, &meta_value, 0), "write meta");
        rc = mdb_txn_commit(txn);
        if (rc == MDB_MAP_FULL) {
            printf("MAP FULL at commit after %.1f GiB\n", written / (1 << 30));
            return 1;
        }
        check(rc, "commit");
        atomic_store(&oldest_key, oldest);
        atomic_store(&newest_key, key_number);
        double took = seconds(CLOCK_MONOTONIC) - begun;
        if (took > slowest) slowest = took;
        written += (double)size;
        if (written >= next_report) {
            double cpu = seconds(CLOCK_THREAD_CPUTIME_ID);
            mdb_env_info(env, &info);
            struct free_list free_list = read_free_list();
            printf("%8.0f %8.0f %10.1f %11zu %11zu %12.0f %10.2f %10llu\n", written / (1 << 30),
                   seconds(CLOCK_MONOTONIC) - started, (double)(info.me_last_pgno + 1) * stat.ms_psize / (1 << 20),
                   free_list.pages, free_list.longest_run,
                   (cpu - cpu_at_report) * 1000 / ((written - written_at_report) / (1 << 30)), slowest * 1000,
                   (unsigned long long)atomic_load(&blocks_read));
            fflush(stdout);
            cpu_at_report = cpu;
            written_at_report = written;
            slowest = 0;
            next_report += 1 << 30;
        }
    }
    atomic_store(&stopping, 1);
    for (int i = 0; i < readers && i < 64; i++) pthread_join(threads[i], NULL);
    printf("done: %llu blocks replayed, %llu with the wrong content\n", (unsigned long long)atomic_load(&blocks_read),
           (unsigned long long)atomic_load(&bad_blocks));
    mdb_env_close(env);
    return atomic_load(&bad_blocks) == 0 ? 0 : 1;
}
