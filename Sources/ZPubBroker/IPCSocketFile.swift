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
}
