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

static inline void zpub_sqlite3_bind_text_copy(sqlite3_stmt *statement, int index, const char *text, int count) {
    sqlite3_bind_text(statement, index, text, count, SQLITE_TRANSIENT);
}

#endif
