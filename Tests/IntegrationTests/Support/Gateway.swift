import Foundation

/// A `[http]` section that turns the gateway on, listening on 127.0.0.1:`port`, with `lines`
/// of its own.
func httpSection(port: Int, _ lines: String = "") -> String {
    "[http]\nenabled = true\nlisten = \"127.0.0.1:\(port)\"\n\(lines)\n"
}

extension Daemon {
    /// This daemon, once its gateway on `port` answers /healthz: over plain HTTP, or as
    /// `answers` finds (a TLS listener).
    @discardableResult
    func waitForGateway(port: Int, answers: (() throws -> Bool)? = nil) throws -> Daemon {
        try Wait.until("the gateway answers /healthz\n\(log)", timeout: 15) {
            if let answers { return try answers() }
            return (try? HTTPProbe.get(port: port, "/healthz").status) == 200
        }
        return self
    }
}
