import Glibc

/// Checks of ZeroMQ endpoint strings before they reach libzmq, so that a typo in a config file is
/// reported with its line and a hint rather than as libzmq's bare EINVAL at bind time.
public enum Endpoint {
    public static let transports = ["tcp", "ipc", "inproc", "pgm", "epgm"]

    /// The longest ipc path (or @abstract name) a Unix socket address holds on Linux.
    public static let maxIPCPathBytes = 107

    /// Whether the endpoint is multicast (pgm or epgm): libzmq sends over it without the ZeroMQ
    /// handshake, so CURVE, ZAP and allow lists do not apply, and receivers' subscriptions never
    /// reach the sender (docs/performance.md, "Multicast").
    public static func isMulticast(_ endpoint: String) -> Bool {
        endpoint.hasPrefix("pgm://") || endpoint.hasPrefix("epgm://")
    }

    /// Nil when `endpoint` looks bindable; otherwise what is wrong and what to write instead.
    public static func problem(with endpoint: String) -> String? {
        guard let range = endpoint.firstRange(of: "://") else {
            // host:port without its transport: the likeliest slip, answered with the fix (only
            // when that is one: not for "tcp:host:port", nor an IPv6 host without brackets).
            if let colon = endpoint.lastIndex(of: ":"), !endpoint.contains("/"),
                endpoint.hasPrefix("[") || !endpoint[..<colon].contains(":"),
                problem(with: "tcp://" + endpoint) == nil
            {
                return "not an endpoint; write transport://address: tcp://\(endpoint)"
            }
            return "not an endpoint; write transport://address, e.g. tcp://127.0.0.1:PORT or ipc:///run/zpub/NAME.sock"
        }
        let transport = String(endpoint[..<range.lowerBound])
        let address = String(endpoint[range.upperBound...])
        guard transports.contains(transport) else {
            return "unknown transport \"\(transport)\"; use one of \(transports.joined(separator: ", "))"
        }
        if address.isEmpty { return "the address after \(transport):// is empty" }
        if address.contains(where: { $0.isWhitespace }) { return "the address contains white space" }
        switch transport {
        case "tcp":
            guard let colon = address.lastIndex(of: ":") else {
                return "a tcp endpoint needs a port, e.g. tcp://127.0.0.1:5556 (or tcp://*:5556 for all interfaces)"
            }
            let port = address[address.index(after: colon)...]
            if port != "*" {
                guard let number = Int(port), (0...65535).contains(number) else {
                    return "port \"\(port)\" is not a number from 0 to 65535 (or *)"
                }
            }
            if address[..<colon].isEmpty {
                return "a tcp endpoint needs a host or interface before the port, e.g. 127.0.0.1 or *"
            }
            // libzmq reads tcp://::1:5556 as an interface named "::1" and fails at bind with
            // "No such device", after --check-config had passed it (an audit). A connect may
            // name its source first (source;host:port): the host is what follows the `;`.
            var host = address[..<colon]
            if let semicolon = host.lastIndex(of: ";") { host = host[host.index(after: semicolon)...] }
            if host.contains(":") && !(host.hasPrefix("[") && host.hasSuffix("]")) {
                return "an IPv6 address goes in brackets: write tcp://[\(host)]:\(port)"
            }
        case "ipc":
            // libzmq copies the path into sockaddr_un's sun_path (108 bytes with its NUL; an
            // abstract name's @ takes the NUL's place) and refuses a longer one at bind.
            if address.utf8.count > maxIPCPathBytes {
                return
                    "the ipc path is \(address.utf8.count) bytes; the kernel takes at most \(maxIPCPathBytes) (sun_path): use a shorter path, e.g. under /run"
            }
        case "pgm", "epgm":
            if !address.contains(";") || !address.contains(":") {
                return
                    "a \(transport) endpoint is interface;multicast-address:port, e.g. \(transport)://eth0;239.192.1.1:5555"
            }
        default:
            break
        }
        return nil
    }
}

extension Endpoint {
    /// Whether connecting to `connect` would reach a socket bound to `bound`, judged from the
    /// strings alone: ipc paths and inproc names when equal; tcp when the ports are the same
    /// number and the hosts are the same literal, or `connect` is a loopback literal and `bound`
    /// a wildcard. Host names other than localhost are not resolved, so a miss is possible;
    /// a false match is not.
    public static func reaches(_ connect: String, bound: String) -> Bool {
        if connect == bound { return true }
        if let file = ipcFile(connect), let listener = ipcFile(bound) { return file == listener }
        guard let to = tcpHostAndPort(connect), let listener = tcpHostAndPort(bound), to.port == listener.port
        else { return false }
        if to.host == listener.host { return true }
        return wildcardHosts.contains(listener.host) && (loopbackHosts.contains(to.host) || to.host.hasPrefix("127."))
    }

    /// Whether two endpoints to connect to lead to the same socket, one way or the other
    /// (`reaches`): a repeat, written the same or two ways (localhost and 127.0.0.1).
    public static func sameTarget(_ first: String, _ second: String) -> Bool {
        reaches(first, bound: second) || reaches(second, bound: first)
    }

    /// The directory an ipc endpoint's socket file goes in, as written; nil for other
    /// transports, abstract names and a file in the root or the working directory.
    public static func ipcDirectory(_ endpoint: String) -> String? {
        guard endpoint.hasPrefix("ipc://"), !endpoint.hasPrefix("ipc://@") else { return nil }
        let path = endpoint.dropFirst("ipc://".count)
        guard let slash = path.lastIndex(of: "/"), slash != path.startIndex else { return nil }
        return String(path[..<slash])
    }

    /// An ipc endpoint's socket file in one spelling: its directory resolved (`.`, `..`, a
    /// doubled `/`, symbolic links, a path relative to the working directory), where it
    /// exists; nil for other transports and abstract names (`ipc://@...`). `/tmp/./x.sock`
    /// was taken for another file than `/tmp/x.sock` (a probe: an upstream looping into its
    /// own xpub, passed by --check-config).
    public static func ipcFile(_ endpoint: String) -> String? {
        guard endpoint.hasPrefix("ipc://"), !endpoint.hasPrefix("ipc://@") else { return nil }
        let path = endpoint.dropFirst("ipc://".count)
        let slash = path.lastIndex(of: "/")
        let name = slash.map { path[path.index(after: $0)...] } ?? path
        let directory = slash.map { $0 == path.startIndex ? "/" : String(path[..<$0]) } ?? "."
        guard let resolved = realpath(directory, nil) else { return String(path) }
        defer { free(resolved) }
        let base = String(cString: resolved)
        return (base == "/" ? "" : base) + "/" + name
    }

    /// Why `endpoint` cannot be bound though it is well formed, or nil: `tcp://localhost:P`,
    /// the common first mistake. libzmq binds addresses, * and interface names, and no host
    /// names: it failed at start with "No such device", after --check-config had passed it
    /// (a walkthrough). Other names are left to the bind, whose error says the same: one may be
    /// an interface that is not up yet (a VLAN, a tunnel), or --check-config run elsewhere.
    public static func bindProblem(with endpoint: String) -> String? {
        guard endpoint.lowercased().hasPrefix("tcp://localhost:") else { return nil }
        let port = endpoint.dropFirst("tcp://localhost:".count)
        return
            "libzmq binds an address, * or a network interface's name, not a host name: write tcp://127.0.0.1:\(port) (or tcp://*:\(port) for every interface)"
    }

    /// Whether two endpoints to bind take the same tcp port: the same number, and the same
    /// host, or a wildcard on one side that covers the other's address (`tcp://*:P` holds P on
    /// every IPv4 address, `tcp://[::]:P` on every address; an IPv4 wildcard beside an IPv6
    /// address shares only the number). `*` on a socket with IPv6 on binds `::`, which this
    /// does not know: a miss is possible, a false match is not.
    public static func takeTheSamePort(_ first: String, _ second: String) -> Bool {
        guard let a = tcpHostAndPort(first), let b = tcpHostAndPort(second), a.port == b.port else { return false }
        func covers(_ wildcard: String, _ host: String) -> Bool {
            wildcard == "::" || (wildcardHosts.contains(wildcard) && !(host.contains(":") && host != "::"))
        }
        return a.host == b.host || covers(a.host, b.host) || covers(b.host, a.host)
    }

    /// libzmq's wildcards for "every interface", and what a connect to the local machine names.
    private static let wildcardHosts: Set<String> = ["*", "0.0.0.0", "::"]
    private static let loopbackHosts: Set<String> = ["127.0.0.1", "::1", "0.0.0.0", "::"]

    /// A tcp endpoint's host (lowercased, without brackets, localhost as 127.0.0.1 as libzmq
    /// resolves it without IPv6) and numeric port; nil for other transports and for a port
    /// that is `*` or 0 (chosen by the kernel: it cannot be compared).
    private static func tcpHostAndPort(_ endpoint: String) -> (host: String, port: Int)? {
        guard endpoint.hasPrefix("tcp://") else { return nil }
        var address = endpoint.dropFirst("tcp://".count)
        // A connect may name its source first: tcp://source:port;host:port.
        if let semicolon = address.lastIndex(of: ";") { address = address[address.index(after: semicolon)...] }
        guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]), port > 0
        else { return nil }
        var host = address[..<colon].lowercased()
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        // An IPv4 address in IPv6 form (::ffff:127.0.0.1) is that IPv4 address.
        if host.hasPrefix("::ffff:"), host.dropFirst("::ffff:".count).contains(".") {
            host = String(host.dropFirst("::ffff:".count))
        }
        return (host == "localhost" ? "127.0.0.1" : host, port)
    }
}
