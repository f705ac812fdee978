// The SQLite C API (Debian's libsqlite3-dev), as the `ZPubStore` module sees it. Nothing else
// imports this module.
#ifndef ZPUB_CSQLITE_SHIM_H
#define ZPUB_CSQLITE_SHIM_H

#include <sqlite3.h>

// SQLITE_TRANSIENT is a cast of -1 to a function pointer, which Swift cannot import: binding
// with it makes SQLite copy the bytes before the call returns.
static inline void zpub_sqlite3_bind_blob_copy(sqlite3_stmt *statement, int index, const void *bytes, int count) {
    sqlite3_bind_blob(statement, index, bytes, count, SQLITE_TRANSIENT);
}

// SQLITE_STATIC: SQLite reads the bytes where they are, so the caller keeps them valid until the
// statement has been stepped and reset (the history writer binds each row's blobs this way,
// straight from the queue's records, instead of having SQLite copy them).
static inline void zpub_sqlite3_bind_blob_static(sqlite3_stmt *statement, int index, const void *bytes, int count) {
    sqlite3_bind_blob(statement, index, bytes, count, SQLITE_STATIC);
}

static inline void zpub_sqlite3_bind_text_static(sqlite3_stmt *statement, int index, const void *text, int count) {
    sqlite3_bind_text(statement, index, (const char *)text, count, SQLITE_STATIC);
}

// SQLite counts every allocation it makes under a process-wide mutex unless told not to; zpub
// never reads those counts. Only possible before SQLite initialises (the first open), else it
// returns SQLITE_MISUSE and changes nothing. sqlite3_config is variadic: Swift cannot call it.
static inline int zpub_sqlite3_disable_memory_statistics(void) {
    return sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

#endif
