import XCTest
import ZeroMQ

@testable import ZPubBroker

#if canImport(Glibc)
    import Glibc
#endif

/// What a person reads when an endpoint cannot be bound: what went wrong and where to change it.
final class BrokerErrorTests: XCTestCase {
    func testAPortInUseNamesWhereTheEndpointIsSet() {
        let data = BrokerError.bindFailed(
            role: .xpub, endpoint: "tcp://127.0.0.1:5556", error: ZMQError(code: EADDRINUSE, operation: "bind"))
        XCTAssertTrue(data.message.contains("choose another endpoint in the config file (or with --xpub at start)"))
        // The pair's endpoint had the reason alone.
        let pair = BrokerError.pairBindFailed(
            endpoint: "tcp://127.0.0.1:5600", error: ZMQError(code: EADDRINUSE, operation: "bind"))
        XCTAssertTrue(pair.message.hasPrefix("cannot bind the pair endpoint tcp://127.0.0.1:5600 ([ha] bind): "))
        XCTAssertTrue(
            pair.message.contains(
                "another process (another zpubd?) is listening there (`ss -ltnp` shows which), or a connection took it as its local port (ports in net.ipv4.ip_local_port_range): stop that process, or choose another endpoint in [ha] bind (or with --ha-bind at start)"
            ), pair.message)
    }
}
