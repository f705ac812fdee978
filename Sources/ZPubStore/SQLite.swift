import CSQLite

/// An SQLite error: what was being done, SQLite's result code and its message.
public struct SQLiteError: Error, CustomStringConvertible, Equatable {
    public let operation: String
    /// The primary result code (`SQLITE_BUSY`, `SQLITE_CORRUPT`, ...).
    public let code: Int32
    public let message: String

    public var description: String { "\(operation): \(message) (SQLite error \(code))" }

    /// Another process holds the database (it is locked).
    public var isLocked: Bool { code == SQLITE_BUSY || code == SQLITE_LOCKED }
    /// The file is not a database, or is damaged.
    public var isCorrupt: Bool { code == SQLITE_CORRUPT || code == SQLITE_NOTADB }
    /// The file or its directory cannot be written, or the disk is full.
    public var isUnwritable: Bool {
        code == SQLITE_READONLY || code == SQLITE_CANTOPEN || code == SQLITE_PERM || code == SQLITE_FULL
            || code == SQLITE_IOERR || code == SQLITE_AUTH
    }
}

/// One SQLite connection: a thin layer over the C API that turns result codes into thrown
/// `SQLiteError`s. Not thread safe (like `Socket`): one thread owns it.
final class SQLiteDatabase {
    private var handle: OpaquePointer?

    /// Opens (creating if needed) the database at `path`; ":memory:" is a private in-memory one.
    init(path: String) throws {
        _ = Self.configured
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX
        let status = sqlite3_open_v2(path, &handle, flags, nil)
        guard status == SQLITE_OK else {
            let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            sqlite3_close(handle)
            handle = nil
            throw SQLiteError(operation: "open \(path)", code: status & 0xFF, message: message)
        }
        sqlite3_extended_result_codes(handle, 0)
    }

    deinit { close() }

    /// Process-wide settings, made once before the first database opens.
    private static let configured: Void = { _ = zpub_sqlite3_disable_memory_statistics() }()

    func close() {
        guard let handle else { return }
        // Statements are finalized by their owners first; v2 defers the close until they are.
        sqlite3_close_v2(handle)
        self.handle = nil
    }

    /// Runs one or more statements that return no rows.
    func execute(_ sql: String) throws {
        var errorMessage: UnsafeMutablePointer<CChar>?
        let status = sqlite3_exec(handle, sql, nil, nil, &errorMessage)
        defer { sqlite3_free(errorMessage) }
        guard status == SQLITE_OK else {
            let message = errorMessage.map { String(cString: $0) } ?? String(cString: sqlite3_errmsg(handle))
            throw SQLiteError(
                operation: sql.split(separator: "\n").first.map(String.init) ?? sql, code: status, message: message)
        }
    }

    func prepare(_ sql: String) throws -> SQLiteStatement {
        var statement: OpaquePointer?
        let status = sqlite3_prepare_v3(handle, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &statement, nil)
        guard status == SQLITE_OK, let statement else { throw error("prepare \(sql)", status) }
        return SQLiteStatement(statement, database: self)
    }

    func error(_ operation: String, _ status: Int32) -> SQLiteError {
        SQLiteError(operation: operation, code: status & 0xFF, message: String(cString: sqlite3_errmsg(handle)))
    }

    /// Rows changed by the last INSERT, UPDATE or DELETE.
    var changes: Int { Int(sqlite3_changes(handle)) }
}

/// A prepared statement, reused across executions (`reset` between them).
final class SQLiteStatement {
    private let statement: OpaquePointer
    private unowned let database: SQLiteDatabase

    fileprivate init(_ statement: OpaquePointer, database: SQLiteDatabase) {
        self.statement = statement
        self.database = database
    }

    deinit { sqlite3_finalize(statement) }

    func reset() {
        sqlite3_reset(statement)
        sqlite3_clear_bindings(statement)
    }

    /// Forgets the bound values; after a run of `bind(_:borrowing:)` rows, so that no pointer
    /// to memory the caller frees stays behind in the statement.
    func clearBindings() {
        sqlite3_clear_bindings(statement)
    }

    func bind(_ index: Int32, _ value: Int64) {
        sqlite3_bind_int64(statement, index, value)
    }

    func bind(_ index: Int32, _ value: UInt64) {
        sqlite3_bind_int64(statement, index, Int64(bitPattern: value))
    }

    func bind(_ index: Int32, blob: [UInt8]) {
        blob.withUnsafeBytes {
            zpub_sqlite3_bind_blob_copy(
                statement, index, $0.baseAddress ?? UnsafeRawPointer(bitPattern: 1), Int32($0.count))
        }
    }

    /// Binds bytes without copying them: `bytes` must stay valid until the statement has run
    /// (`runKeepingBindings`) and is bound again or cleared.
    func bind(_ index: Int32, borrowing bytes: UnsafeRawBufferPointer) {
        zpub_sqlite3_bind_blob_static(
            statement, index, bytes.baseAddress ?? UnsafeRawPointer(bitPattern: 1), Int32(bytes.count))
    }

    /// Binds UTF-8 text without copying it, under the same rule as `bind(_:borrowing:)`.
    func bind(_ index: Int32, borrowingText text: UnsafeBufferPointer<UInt8>) {
        zpub_sqlite3_bind_text_static(
            statement, index, UnsafeRawPointer(text.baseAddress) ?? UnsafeRawPointer(bitPattern: 1), Int32(text.count))
    }

    /// Advances to the next row: true while there is one, false when done.
    func step() throws -> Bool {
        let status = sqlite3_step(statement)
        switch status {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        default: throw database.error("step", status)
        }
    }

    /// Runs a statement that returns no rows, then resets it.
    func run() throws {
        defer { reset() }
        _ = try step()
    }

    /// Runs a statement that returns no rows and resets it, leaving its values bound: for a
    /// statement run row after row with every parameter bound each time, where clearing them
    /// each time is wasted work (callgrind: ~850 instructions per history row).
    func runKeepingBindings() throws {
        defer { sqlite3_reset(statement) }
        _ = try step()
    }

    func int64(_ column: Int32) -> Int64 { sqlite3_column_int64(statement, column) }

    func uint64(_ column: Int32) -> UInt64 { UInt64(bitPattern: sqlite3_column_int64(statement, column)) }

    func isNull(_ column: Int32) -> Bool { sqlite3_column_type(statement, column) == SQLITE_NULL }

    func blob(_ column: Int32) -> [UInt8] {
        let count = Int(sqlite3_column_bytes(statement, column))
        guard count > 0, let bytes = sqlite3_column_blob(statement, column) else { return [] }
        return Array(UnsafeRawBufferPointer(start: bytes, count: count))
    }

    /// Calls `body` with the blob's bytes where SQLite holds them: valid until the statement
    /// steps, resets or is read as another type, so `body` must not keep them.
    func withBlob<Result>(_ column: Int32, _ body: (UnsafeRawBufferPointer) throws -> Result) rethrows -> Result {
        let count = Int(sqlite3_column_bytes(statement, column))
        guard count > 0, let bytes = sqlite3_column_blob(statement, column) else {
            return try body(UnsafeRawBufferPointer(start: nil, count: 0))
        }
        return try body(UnsafeRawBufferPointer(start: bytes, count: count))
    }

    /// All of the text's bytes, a NUL among them included (as `bind` stores them).
    func text(_ column: Int32) -> String {
        guard let text = sqlite3_column_text(statement, column) else { return "" }
        let count = Int(sqlite3_column_bytes(statement, column))
        return String(decoding: UnsafeBufferPointer(start: text, count: count), as: UTF8.self)
    }
}
