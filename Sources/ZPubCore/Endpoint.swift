/// Checks of ZeroMQ endpoint strings before they reach libzmq, so that a typo in a config file is
/// reported with its line and a hint rather than as libzmq's bare EINVAL at bind time.
public enum Endpoint {
    public static let transports = ["tcp", "ipc", "inproc", "pgm", "epgm"]

    /// Whether the endpoint is multicast (pgm or epgm): libzmq sends over it without the ZeroMQ
    /// handshake, so CURVE, ZAP and allow lists do not apply, and receivers' subscriptions never
    /// reach the sender (docs/performance.md, "Multicast").
    public static func isMulticast(_ endpoint: String) -> Bool {
        endpoint.hasPrefix("pgm://") || endpoint.hasPrefix("epgm://")
    }

    /// Nil when `endpoint` looks bindable; otherwise what is wrong and what to write instead.
    public static func problem(with endpoint: String) -> String? {
        guard let range = endpoint.firstRange(of: "://") else {
            return "not an endpoint; write transport://address, e.g. tcp://127.0.0.1:5556 or ipc:///run/zpub/xpub.sock"
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
