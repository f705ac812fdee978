import Glibc

/// Whether another process serves an `ipc://` endpoint's socket file. libzmq binds an ipc
/// endpoint by removing the file first, so a second zpubd started on the same paths took them
/// from the first without a word: the first ran on, unreachable there (a probe; a TCP port in
/// use is refused by the kernel instead).
enum IPCSocketFile {
    /// True when a connection to the file at `endpoint` (`ipc://<path>`) is accepted, or would
    /// be but for a full backlog; false for any other endpoint, an abstract one (`ipc://@...`,
    /// which the kernel refuses to bind twice), a missing file, or a stale one left by a process
    /// that stopped without removing it. Connects and closes at once: the serving process sees
    /// a peer that hangs up before its handshake.
    static func isServed(_ endpoint: String) -> Bool {
        guard endpoint.hasPrefix("ipc://"), !endpoint.hasPrefix("ipc://@") else { return false }
        let path = Array(endpoint.utf8.dropFirst("ipc://".utf8.count))
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        guard path.count < MemoryLayout.size(ofValue: address.sun_path) else { return false }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: path)
            raw[path.count] = 0
        }
        let descriptor = socket(
            AF_UNIX, Int32(SOCK_STREAM.rawValue | SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        return result == 0 || errno == EAGAIN
    }

    /// Which file a path names, so that a file bound later at the same path (by another
    /// process, or by a bind after an unbind) is told apart: the device and inode, and the
    /// modification time, since ext4 hands a path's freed inode number to the next file made
    /// there (50 times in 50). Not the change time: the control socket's chmod follows its bind.
    struct Identity: Equatable {
        let path: String
        let device: UInt64
        let inode: UInt64
        let modifiedSeconds: Int
        let modifiedNanoseconds: Int
    }

    /// The socket file behind an `ipc://<path>` endpoint, or nil for any other endpoint, an
    /// abstract one (no file) or a path that is no socket.
    static func identity(of endpoint: String) -> Identity? {
        guard endpoint.hasPrefix("ipc://"), !endpoint.hasPrefix("ipc://@") else { return nil }
        return identity(atPath: String(endpoint.dropFirst("ipc://".count)))
    }

    private static func identity(atPath path: String) -> Identity? {
        var info = stat()
        guard lstat(path, &info) == 0, info.st_mode & S_IFMT == S_IFSOCK else { return nil }
        return Identity(
            path: path, device: UInt64(info.st_dev), inode: UInt64(info.st_ino),
            modifiedSeconds: info.st_mtim.tv_sec, modifiedNanoseconds: info.st_mtim.tv_nsec)
    }

    /// Removes the socket file `identity` names, if the path still names that file. libzmq
    /// 4.3.4 removes a socket file only for a wildcard endpoint's temporary directory: every
    /// stop and every unbind left one behind, where a client found "connection refused" rather
    /// than "no such file" (is zpubd running?).
    static func remove(_ identity: Identity) {
        guard Self.identity(atPath: identity.path) == identity else { return }
        unlink(identity.path)
    }
}
