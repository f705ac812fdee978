import XCTest
import ZPubCore

/// The control API's replies as the REP socket sends them: each case is its payload alone, keys
/// sorted (docs/control-protocol.md), so the typed API and the wire format cannot drift apart.
final class ControlReplyTests: XCTestCase {
    private func text(_ reply: ControlReply) -> String {
        String(decoding: reply.json, as: UTF8.self)
    }

    func testSmallRepliesHaveTheirDocumentedShape() {
        XCTAssertEqual(text(.pong), #"{"pong":true}"#)
        XCTAssertEqual(text(.forwarding(.paused)), #"{"forwarding":"paused"}"#)
        XCTAssertEqual(text(.forwarding(.running)), #"{"forwarding":"running"}"#)
        XCTAssertEqual(text(.help(["PING: x"])), #"{"commands":["PING: x"]}"#)
        XCTAssertEqual(
            text(.version(VersionReply(version: "1.2.3", libzmq: "4.3.4"))), #"{"libzmq":"4.3.4","version":"1.2.3"}"#)
    }

    func testAnErrorIsWrappedInItsEnvelope() {
        let reply = ControlReply.error(ControlError(.unavailable, "the loop is busy"))
        XCTAssertEqual(text(reply), #"{"error":{"code":"unavailable","message":"the loop is busy"}}"#)
        XCTAssertEqual(reply.failure?.code, .unavailable)
        XCTAssertNil(ControlReply.pong.failure)
    }

    func testHealthDecodesBackToTheSameValue() throws {
        let report = HealthReport(
            status: .unhealthy, forwarding: .notResponding, uptimeSeconds: 1.5, loopLagSeconds: 3,
            subscriptions: 0, version: "0.1.0")
        let json = ControlReply.health(report).json
        XCTAssertTrue(String(decoding: json, as: UTF8.self).contains(#""forwarding":"not responding""#))
        XCTAssertEqual(try JSONDecoder().decode(HealthReport.self, from: Data(json)), report)
    }

    /// A status and forwarding state this zpub does not know (a newer zpubd's) decode as
    /// themselves, and are not healthy: as enums, "stopping" made an older `zpub` fail on the
    /// whole reply.
    func testHealthWithAStatusNotKnownHereStillDecodesAndIsNotHealthy() throws {
        let json = Array(
            #"{"status":"melting","forwarding":"sideways","uptime_s":1,"loop_lag_s":0,"subscriptions":0,"version":"9.0"}"#
                .utf8)
        let decoded = try JSONDecoder().decode(HealthReport.self, from: Data(json))
        XCTAssertEqual(decoded.status.rawValue, "melting")
        XCTAssertEqual(decoded.forwarding.rawValue, "sideways")
        XCTAssertFalse(decoded.isHealthy())
        XCTAssertFalse(decoded.isHealthy(passiveOK: true))
        let stopping = HealthReport(
            status: .stopping, forwarding: .stopping, uptimeSeconds: 1, loopLagSeconds: 0, subscriptions: 0,
            version: "0.1.0")
        let encoded = String(decoding: ControlReply.health(stopping).json, as: UTF8.self)
        XCTAssertTrue(encoded.contains(#""status":"stopping""#), encoded)
        XCTAssertTrue(encoded.contains(#""forwarding":"stopping""#), encoded)
        XCTAssertFalse(stopping.isHealthy(passiveOK: true))
    }

    /// A problem kind this zpub does not know (a newer zpubd's) decodes as itself: the whole
    /// reply failed to decode while the kinds were an enum.
    func testHealthWithAProblemOfAKindNotKnownHereStillDecodes() throws {
        var report = HealthReport(
            status: .ok, forwarding: .running, uptimeSeconds: 1, loopLagSeconds: 0, subscriptions: 0, version: "9.0")
        report.problems = [
            HealthProblem(.init(rawValue: "disk_on_fire"), "put it out"), HealthProblem(.historyDamaged, "x"),
        ]
        let json = ControlReply.health(report).json
        XCTAssertTrue(String(decoding: json, as: UTF8.self).contains(#""kind":"disk_on_fire""#))
        let decoded = try JSONDecoder().decode(HealthReport.self, from: Data(json))
        XCTAssertEqual(decoded.problems?.map(\.kind.rawValue), ["disk_on_fire", "history_damaged"])
        XCTAssertEqual(decoded.problems?.last?.kind, .historyDamaged)
    }

    func testSlashesInTopicsAreNotEscaped() {
        let list = SubscriptionList(total: 1, prefixes: 1, subscriptions: [.init(prefix: Array("a/b".utf8), count: 1)])
        XCTAssertTrue(text(.subscriptions(list)).contains(#""prefix":"a/b""#))
    }
}
