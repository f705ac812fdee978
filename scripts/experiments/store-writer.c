/*
 * An experiment, not part of the build: what storing history blocks costs in SQLite (as zpubd
 * does: WAL, synchronous=NORMAL, one row per block of ~256 KiB, the block bound without a copy)
 * against LMDB (MDB_APPEND | MDB_RESERVE: the block is copied once, straight into the map).
 * Records are SIZE bytes plus zpubd's 31 bytes of header; one transaction per block.
 *
 *   apt-get install liblmdb-dev libsqlite3-dev
 *   cc -O2 scripts/experiments/store-writer.c -o /tmp/store-writer -llmdb -lsqlite3
 *   mkdir /tmp/db && valgrind --tool=callgrind /tmp/store-writer lmdb|sqlite COUNT SIZE /tmp/db
 *
 * Run it for COUNT and 2 x COUNT and divide the difference by COUNT; with GLIBC_TUNABLES as in
 * scripts/measure-common.sh (copies counted as the CPU makes them). LMDB runs with MDB_NOSYNC
 * here: the instructions are the same with a sync per commit, the durability is not
 * (docs/history.md, "What it costs").
 */
#include <lmdb.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int store_lmdb(const char *directory, const char *block, int record, int count, int per_block) {
    MDB_env *env;
    if (mdb_env_create(&env) || mdb_env_set_mapsize(env, (size_t)8 << 30) ||
        mdb_env_open(env, directory, MDB_NOSYNC | MDB_WRITEMAP, 0644)) {
        fprintf(stderr, "cannot open an LMDB environment in %s\n", directory);
        return 1;
    }
    for (int done = 0; done < count; done += per_block) {
        int messages = count - done < per_block ? count - done : per_block;
        MDB_txn *txn;
        MDB_dbi dbi;
        uint64_t first = __builtin_bswap64((uint64_t)done + 1); /* big-endian: keys sort by sequence */
        MDB_val key = {sizeof first, &first}, value = {(size_t)record * messages, NULL};
        if (mdb_txn_begin(env, NULL, 0, &txn) || mdb_dbi_open(txn, NULL, 0, &dbi) ||
            mdb_put(txn, dbi, &key, &value, MDB_APPEND | MDB_RESERVE)) {
            fprintf(stderr, "LMDB put failed\n");
            return 1;
        }
        memcpy(value.mv_data, block, value.mv_size);
        if (mdb_txn_commit(txn)) {
            fprintf(stderr, "LMDB commit failed\n");
            return 1;
        }
    }
    mdb_env_close(env);
    return 0;
}

static int store_sqlite(const char *directory, const char *block, int record, int count, int per_block) {
    char path[4096];
    snprintf(path, sizeof path, "%s/history.sqlite3", directory);
    sqlite3 *db;
    sqlite3_stmt *insert;
    if (sqlite3_open(path, &db) ||
        sqlite3_exec(db,
                     "PRAGMA locking_mode = EXCLUSIVE; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;"
                     "CREATE TABLE blocks (first_seq INTEGER PRIMARY KEY, records BLOB NOT NULL)",
                     NULL, NULL, NULL) ||
        sqlite3_prepare_v2(db, "INSERT INTO blocks VALUES (?, ?)", -1, &insert, NULL)) {
        fprintf(stderr, "cannot open %s: %s\n", path, sqlite3_errmsg(db));
        return 1;
    }
    for (int done = 0; done < count; done += per_block) {
        int messages = count - done < per_block ? count - done : per_block;
        sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
        sqlite3_bind_int64(insert, 1, done + 1);
        sqlite3_bind_blob(insert, 2, block, record * messages, SQLITE_STATIC);
        if (sqlite3_step(insert) != SQLITE_DONE || sqlite3_exec(db, "COMMIT", NULL, NULL, NULL)) {
            fprintf(stderr, "SQLite insert failed: %s\n", sqlite3_errmsg(db));
            return 1;
        }
        sqlite3_reset(insert);
    }
    sqlite3_finalize(insert);
    sqlite3_close(db);
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s lmdb|sqlite COUNT SIZE DIRECTORY\n", argv[0]);
        return 2;
    }
    int count = atoi(argv[2]), record = atoi(argv[3]) + 31;
    int per_block = 262144 / record > 0 ? 262144 / record : 1; /* zpubd's 256 KiB per block */
    char *block = malloc((size_t)record * per_block);
    memset(block, 'x', (size_t)record * per_block);
    return strcmp(argv[1], "lmdb") == 0 ? store_lmdb(argv[4], block, record, count, per_block)
                                        : store_sqlite(argv[4], block, record, count, per_block);
}
