#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Reading the small text files zpubd is pointed at (its configuration, keys, allow lists) with
/// POSIX calls: zpubd does not load Foundation (docs/performance.md, "Memory"), and the
/// errors name the system's reason (`strerror`), which is what a person can act on.
public enum TextFile {
    /// Why a file could not be read: the system's reason, e.g. "No such file or directory".
    public struct ReadError: Error, CustomStringConvertible {
        public let reason: String
        public var description: String { reason }

        init(errno code: Int32) {
            reason = String(cString: strerror(code))
        }

        init(_ reason: String) {
            self.reason = reason
        }
    }

    /// Files zpubd reads are a few KiB; anything past this is not one of them.
    public static let maxSize = 16 << 20

    /// A path `credential:NAME` is the credential NAME that systemd passes the service
    /// (`LoadCredential=NAME:/etc/zpub/...` in the unit), in $CREDENTIALS_DIRECTORY: how a
    /// service run as a DynamicUser= reads a secret that only root may read.
    public static let credentialScheme = "credential:"

    /// The file a configured path names (`credentialScheme` resolved).
    public static func resolve(_ path: String) throws(ReadError) -> String {
        guard path.hasPrefix(credentialScheme) else { return path }
        let name = path.dropFirst(credentialScheme.count)
        guard !name.isEmpty, !name.contains("/"), name != ".", name != ".." else {
            throw ReadError("\"\(path)\" names no credential: write credential:NAME, e.g. credential:server.secret")
        }
        guard let directory = getenv("CREDENTIALS_DIRECTORY").map({ String(cString: $0) }), !directory.isEmpty
        else {
            throw ReadError(
                "systemd passed no credentials (CREDENTIALS_DIRECTORY is not set): \(path) needs LoadCredential=\(name):/path/of/the/file in the unit; outside systemd, write the file's path"
            )
        }
        let file = directory + "/" + name
        // Some credentials passed, not this one: said as such, not as a file to create.
        guard access(file, F_OK) == 0 else {
            throw ReadError(
                "systemd passed no credential \(name) (it is not in $CREDENTIALS_DIRECTORY): add LoadCredential=\(name):/path/of/the/file to the unit"
            )
        }
        return file
    }

    /// The file's contents, which must be UTF-8: refused otherwise at the first byte that is
    /// not, by line and column (a Latin-1 "é" in a comment refused the whole file, unplaced).
    public static func read(_ path: String) throws(ReadError) -> String {
        let bytes = try readBytes(path)
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw ReadError(invalidUTF8Reason(bytes))
        }
        return text
    }

    /// Where the first byte that is not UTF-8 lies in `bytes`, in words.
    static func invalidUTF8Reason(_ bytes: [UInt8]) -> String {
        var parser = Unicode.UTF8.ForwardParser()
        var iterator = bytes.makeIterator()
        var (offset, line, column) = (0, 1, 1)
        while case .valid(let scalar) = parser.parseScalar(from: &iterator) {
            offset += scalar.count
            if scalar.count == 1 && scalar.first == UInt8(ascii: "\n") {
                (line, column) = (line + 1, 1)
            } else {
                column += 1
            }
        }
        guard offset < bytes.count else { return "not valid UTF-8 text" }
        let byte = String(bytes[offset], radix: 16, uppercase: true)
        return
            "not valid UTF-8 text: line \(line), column \(column) (byte \(offset) of the file is 0x\(byte)); save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)"
    }

    /// The file's bytes as they are (a secret may be any bytes). Only a regular file is read:
    /// the open does not block (a FIFO's would wait for a writer, and it runs on the thread that
    /// handles SIGTERM and RELOAD), and anything else is refused with what it is.
    public static func readBytes(_ path: String) throws(ReadError) -> [UInt8] {
        let file = open(try resolve(path), O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard file >= 0 else { throw ReadError(errno: errno) }
        defer { close(file) }
        var info = stat()
        guard fstat(file, &info) == 0 else { throw ReadError(errno: errno) }
        if let kind = notRegular(info.st_mode) {
            throw ReadError(
                "it is \(kind), not a regular file; zpubd reads only regular files (anything else may wait for a writer forever): put the contents in a regular file there"
            )
        }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            let count = chunk.withUnsafeMutableBytes { Glibc.read(file, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw ReadError(errno: errno)
            }
            if count == 0 { break }
            bytes += chunk[0..<count]
            if bytes.count > maxSize {
                throw ReadError("larger than \(maxSize >> 20) MiB, not a text file zpubd reads")
            }
        }
        return bytes
    }

    /// What a file of `mode` is, when it is not a regular file.
    private static func notRegular(_ mode: mode_t) -> String? {
        switch mode & S_IFMT {
        case S_IFREG: return nil
        case S_IFDIR: return "a directory"
        case S_IFIFO: return "a FIFO (named pipe)"
        case S_IFCHR: return "a character device"
        case S_IFBLK: return "a block device"
        case S_IFSOCK: return "a socket"
        default: return "a file of an unknown kind"
        }
    }

    public enum Kind: Equatable, Sendable {
        case missing
        case directory
        /// A regular file (or anything else that is not a directory), with its permission bits.
        case file(mode: UInt32)
    }

    /// What is at `path` (following symbolic links).
    public static func kind(_ path: String) -> Kind {
        var info = stat()
        guard let resolved = try? resolve(path), stat(resolved, &info) == 0 else { return .missing }
        if info.st_mode & S_IFMT == S_IFDIR { return .directory }
        return .file(mode: UInt32(info.st_mode) & 0o7777)
    }

    /// The names in a directory, without "." and "..", sorted.
    public static func entries(_ path: String) throws(ReadError) -> [String] {
        guard let directory = opendir(try resolve(path)) else { throw ReadError(errno: errno) }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: MemoryLayout.size(ofValue: entry.pointee.d_name)) {
                    String(cString: $0)
                }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }
}
