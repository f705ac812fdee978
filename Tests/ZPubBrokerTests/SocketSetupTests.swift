import XCTest
import ZPubCore
import ZeroMQ

@testable import ZPubBroker

/// Which ZMTP heartbeats each data socket gets: the choices that decide what a held-back
/// producer or a lagging subscriber loses (docs/reliability.md). The behaviour itself is tested
/// end to end (`ControlTests`, `PairTests`, `NetworkFaultTests`); these pin the options.
final class SocketSetupTests: XCTestCase {
    private func value(_ option: SocketOption, _ role: BrokerSocketRole, _ configuration: BrokerConfiguration) -> Int64?
    {
        SocketSetup.listenerOptions(role, configuration).last { $0.option == option }?.value
    }

    /// PULL and XSUB never heartbeat: libzmq stops reading a producer or publisher while zpubd
    /// does not (PAUSE), and a heartbeat timeout would then drop it with what it had in flight,
    /// or, if it hung up meanwhile, abort zpubd.
    func testPULLAndXSUBNeverHeartbeatWhateverTheConfiguration() {
        var configuration = BrokerConfiguration()
        configuration.heartbeatIntervalMilliseconds = 250
        configuration.heartbeatTimeoutMilliseconds = 750
        for role in [BrokerSocketRole.pull, .xsub] {
            XCTAssertEqual(value(.heartbeatInterval, role, configuration), 0, "\(role)")
        }
        configuration.pair.role = .primary
        XCTAssertEqual(value(.heartbeatInterval, .pull, configuration), 0, "nor in a pair")
        XCTAssertEqual(value(.heartbeatInterval, .xsub, configuration), 0, "nor in a pair")
    }

    func testXPUBHeartbeatsAsConfigured() {
        var configuration = BrokerConfiguration()
        configuration.heartbeatIntervalMilliseconds = 250
        configuration.heartbeatTimeoutMilliseconds = 750
        XCTAssertEqual(value(.heartbeatInterval, .xpub, configuration), 250)
        XCTAssertEqual(value(.heartbeatTimeout, .xpub, configuration), 750)
        configuration.heartbeatIntervalMilliseconds = 0
        XCTAssertEqual(value(.heartbeatInterval, .xpub, configuration), 0, "off when configured off")
    }

    /// A pair's XPUB pings its clients ten times per failover interval, whatever the heartbeat
    /// settings, so that data is in flight on every connection for the passive broker's check
    /// (`SubscriberReachability`); it drops them only after the configured timeout, as outside
    /// a pair (half the failover interval dropped subscribers merely behind in their reading).
    func testAPairsXPUBPingsTenTimesPerFailoverAndTimesOutAsConfigured() {
        var configuration = BrokerConfiguration()
        configuration.pair.role = .backup
        configuration.pair.failoverMilliseconds = 2_000
        configuration.heartbeatIntervalMilliseconds = 0
        XCTAssertEqual(value(.heartbeatInterval, .xpub, configuration), 200)
        XCTAssertEqual(value(.heartbeatTimeout, .xpub, configuration), 30_000)
        configuration.heartbeatIntervalMilliseconds = 50
        configuration.heartbeatTimeoutMilliseconds = 5_000
        XCTAssertEqual(value(.heartbeatInterval, .xpub, configuration), 50, "a shorter configured interval stays")
        XCTAssertEqual(value(.heartbeatTimeout, .xpub, configuration), 5_000)
    }

    /// What waits in libzmq for one peer is bounded: XSUB's subscriptions for a publisher that
    /// does not read them (with room for a whole replay of the table), the control socket's
    /// requests from one client.
    func testQueuesForOnePeerAreBoundedWithRoomForAWholeReplay() {
        var configuration = BrokerConfiguration()
        configuration.maxSubscriptions = 5_000
        XCTAssertEqual(value(.sendHighWaterMark, .xsub, configuration), 11_024)
        XCTAssertEqual(value(.sendHighWaterMark, .control, configuration), 16)
        XCTAssertEqual(value(.receiveHighWaterMark, .control, configuration), 16)
        XCTAssertNotEqual(value(.receiveHighWaterMark, .xpub, configuration), 16)
    }
}
