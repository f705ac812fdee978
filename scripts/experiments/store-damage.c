/*
 * An experiment, not part of the build: what a damaged file does to a reader, in LMDB and in
 * SQLite. zpubd promises that a store it cannot use stops it with the reason, not a crash
 * (docs/history.md). Each trial writes the same blocks into a fresh store, overwrites BYTES
 * random bytes of its file (one 4 KiB page's worth by default, anywhere after the first two
 * pages, which both engines check at open), then, in a child process, opens the store, reads
 * every block and appends one more, as zpubd's start and writer would. It counts how the child
 * ended: clean (the damage was not seen), an error returned, or killed by a signal.
 *
 *   apt-get install liblmdb-dev libsqlite3-dev
 *   cc -O2 scripts/experiments/store-damage.c -o /tmp/store-damage -llmdb -lsqlite3
 *   /tmp/store-damage lmdb|sqlite TRIALS [BYTES] [DIRECTORY]
 *
 * A negative BYTES overwrites that many bytes at the start of a page (its header: the page's
 * kind, its count of keys, its pointers), where a reader that trusts the file goes astray.
 */
#include <fcntl.h>
#include <lmdb.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

enum { block_count = 400 };

static char path[4096];

static size_t block_size(int index) { return (size_t)(64 + (index * 7919) % (128 * 1024)); }

static void fill(char *bytes, size_t size, int index) {
    for (size_t i = 0; i < size; i++) bytes[i] = (char)(index + i);
}

static int write_lmdb(const char *directory) {
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    snprintf(path, sizeof path, "%s/data.mdb", directory);
    if (mdb_env_create(&env) || mdb_env_set_mapsize(env, 256 << 20) || mdb_env_open(env, directory, 0, 0644))
        return 1;
    for (int i = 0; i < block_count; i++) {
        uint64_t key_be = __builtin_bswap64((uint64_t)i + 1);
        MDB_val key = {8, &key_be}, value = {block_size(i), NULL};
        if (mdb_txn_begin(env, NULL, 0, &txn) || mdb_dbi_open(txn, NULL, 0, &dbi) ||
            mdb_put(txn, dbi, &key, &value, MDB_APPEND | MDB_RESERVE))
            return 1;
        fill(value.mv_data, value.mv_size, i);
        if (i % 3 == 0 && i > 10) { /* evict, so that the free list has pages in it */
            uint64_t old_be = __builtin_bswap64((uint64_t)i - 10);
            MDB_val old = {8, &old_be};
            mdb_del(txn, dbi, &old, NULL);
        }
        if (mdb_txn_commit(txn)) return 1;
    }
    mdb_env_close(env);
    return 0;
}

/* 0 clean, 1 an error returned. */
static int read_lmdb(const char *directory) {
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_cursor *cursor;
    MDB_val key, value;
    if (mdb_env_create(&env) || mdb_env_set_mapsize(env, 256 << 20) || mdb_env_open(env, directory, 0, 0644))
        return 1;
    if (mdb_txn_begin(env, NULL, 0, &txn) || mdb_dbi_open(txn, NULL, 0, &dbi) || mdb_cursor_open(txn, dbi, &cursor))
        return 1;
    int rc = mdb_cursor_get(cursor, &key, &value, MDB_FIRST);
    volatile unsigned sum = 0;
    while (rc == 0) {
        for (size_t i = 0; i < value.mv_size; i += 512) sum += ((unsigned char *)value.mv_data)[i];
        rc = mdb_cursor_get(cursor, &key, &value, MDB_NEXT);
    }
    if (rc != MDB_NOTFOUND) return 1;
    uint64_t last_be = __builtin_bswap64(1000000);
    MDB_val last = {8, &last_be}, block = {100000, NULL};
    if (mdb_put(txn, dbi, &last, &block, MDB_APPEND | MDB_RESERVE)) return 1;
    memset(block.mv_data, 'x', block.mv_size);
    return mdb_txn_commit(txn) ? 1 : 0;
}

static int write_sqlite(const char *directory) {
    sqlite3 *db;
    sqlite3_stmt *insert;
    snprintf(path, sizeof path, "%s/history.sqlite3", directory);
    if (sqlite3_open(path, &db) ||
        sqlite3_exec(db,
                     "PRAGMA journal_mode = WAL; CREATE TABLE blocks (first_seq INTEGER PRIMARY KEY, records BLOB)",
                     NULL, NULL, NULL) ||
        sqlite3_prepare_v2(db, "INSERT INTO blocks VALUES (?, ?)", -1, &insert, NULL))
        return 1;
    char *bytes = malloc(128 * 1024 + 64);
    for (int i = 0; i < block_count; i++) {
        fill(bytes, block_size(i), i);
        sqlite3_bind_int64(insert, 1, i + 1);
        sqlite3_bind_blob(insert, 2, bytes, (int)block_size(i), SQLITE_STATIC);
        if (sqlite3_step(insert) != SQLITE_DONE) return 1;
        sqlite3_reset(insert);
        if (i % 3 == 0 && i > 10) {
            char statement[128];
            snprintf(statement, sizeof statement, "DELETE FROM blocks WHERE first_seq = %d", i - 10);
            sqlite3_exec(db, statement, NULL, NULL, NULL);
        }
    }
    sqlite3_finalize(insert);
    /* Checkpoint everything into the file, so that the damage lands in what is read. */
    sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL);
    sqlite3_close(db);
    free(bytes);
    return 0;
}

static int read_sqlite(const char *directory) {
    sqlite3 *db;
    sqlite3_stmt *select;
    (void)directory;
    if (sqlite3_open(path, &db) || sqlite3_prepare_v2(db, "SELECT records FROM blocks", -1, &select, NULL)) return 1;
    volatile unsigned sum = 0;
    int rc;
    while ((rc = sqlite3_step(select)) == SQLITE_ROW) {
        const unsigned char *bytes = sqlite3_column_blob(select, 0);
        int size = sqlite3_column_bytes(select, 0);
        for (int i = 0; i < size; i += 512) sum += bytes[i];
    }
    if (rc != SQLITE_DONE) return 1;
    sqlite3_finalize(select);
    char *big = calloc(1, 100000);
    sqlite3_stmt *insert;
    if (sqlite3_prepare_v2(db, "INSERT INTO blocks VALUES (1000000, ?)", -1, &insert, NULL)) return 1;
    sqlite3_bind_blob(insert, 1, big, 100000, SQLITE_STATIC);
    rc = sqlite3_step(insert);
    sqlite3_finalize(insert);
    return rc == SQLITE_DONE && sqlite3_close(db) == SQLITE_OK ? 0 : 1;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s lmdb|sqlite TRIALS [BYTES] [DIRECTORY]\n", argv[0]);
        return 2;
    }
    int lmdb = strcmp(argv[1], "lmdb") == 0, trials = atoi(argv[2]);
    int damage = argc > 3 ? atoi(argv[3]) : 4096, headers = damage < 0;
    if (headers) damage = -damage;
    const char *directory = argc > 4 ? argv[4] : "/dev/shm/store-damage";
    int clean = 0, errors = 0, signals = 0, by_signal[65] = {0};
    srand(12345);
    for (int trial = 0; trial < trials; trial++) {
        char command[4200];
        snprintf(command, sizeof command, "rm -rf %s && mkdir -p %s", directory, directory);
        if (system(command) != 0 || (lmdb ? write_lmdb(directory) : write_sqlite(directory)) != 0) {
            fprintf(stderr, "cannot write the store in %s\n", directory);
            return 1;
        }
        int fd = open(path, O_RDWR);
        struct stat status;
        fstat(fd, &status);
        off_t start = 8192 + (off_t)((unsigned)rand() % (unsigned)(status.st_size - 8192 - damage));
        if (headers) start -= start % 4096; /* the start of a page: its header */
        char *garbage = malloc((size_t)damage);
        for (int i = 0; i < damage; i++) garbage[i] = (char)rand();
        if (pwrite(fd, garbage, (size_t)damage, start) != damage) return 1;
        free(garbage);
        close(fd);
        pid_t child = fork();
        if (child == 0) _exit(lmdb ? read_lmdb(directory) : read_sqlite(directory));
        int status_code;
        waitpid(child, &status_code, 0);
        if (WIFSIGNALED(status_code)) {
            signals++;
            by_signal[WTERMSIG(status_code) & 63]++;
        } else if (WEXITSTATUS(status_code) == 0) {
            clean++;
        } else {
            errors++;
        }
    }
    printf("%s, %d trials, %d bytes overwritten each%s: %d unnoticed, %d reported as an error, %d killed by a signal",
           argv[1], trials, damage, headers ? " at a page's start" : "", clean, errors, signals);
    for (int s = 1; s < 65; s++)
        if (by_signal[s]) printf(" (%s: %d)", strsignal(s), by_signal[s]);
    printf("\n");
    return 0;
}
