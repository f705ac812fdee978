import XCTest
import ZPubCore

/// The ZAP handler's decisions in memory: every verdict a connection can get.
final class ZAPDecisionTests: XCTestCase {
    private let key = [UInt8](repeating: 7, count: 32)
    private let otherKey = [UInt8](repeating: 9, count: 32)

    private func request(
        domain: String = "xpub", address: String = "10.0.0.5", mechanism: String, credentials: [UInt8]?
    )
        -> ZAPRequest
    {
        var frames = [
            Array("1.0".utf8), Array("42".utf8), Array(domain.utf8), Array(address.utf8), [], Array(mechanism.utf8),
        ]
        if let credentials { frames.append(credentials) }
        return ZAPRequest(frames: frames)!
    }

    func testMalformedFramesAreNotARequest() {
        XCTAssertNil(ZAPRequest(frames: []))
        XCTAssertNil(ZAPRequest(frames: [Array("2.0".utf8), [], [], [], [], []]), "unknown version")
        XCTAssertNil(ZAPRequest(frames: [Array("1.0".utf8), [], []]), "too few frames")
        let reply = ZAPDecision.malformedReply(to: [Array("1.0".utf8), Array("7".utf8)])
        XCTAssertEqual(reply[1], Array("7".utf8), "the request id is echoed")
        XCTAssertEqual(reply[2], Array("400".utf8))
    }

    func testAnUnknownDomainIsDenied() {
        XCTAssertEqual(
            ZAPDecision.decide(request(domain: "other", mechanism: "NULL", credentials: nil), policies: [:]),
            .denied(reason: "unknown ZAP domain"))
    }

    func testAddressesOutsideTheListAreDeniedButLocalPeersPass() {
        let policies = ["xpub": ZAPPolicy(allowedKeys: nil, allowedAddresses: [CIDR("10.0.0.0/24")!])]
        XCTAssertEqual(
            ZAPDecision.decide(request(mechanism: "NULL", credentials: nil), policies: policies),
            .allowed(curveKey: nil))
        XCTAssertEqual(
            ZAPDecision.decide(request(address: "10.0.1.5", mechanism: "NULL", credentials: nil), policies: policies),
            .denied(reason: "address not allowed"))
        XCTAssertEqual(
            ZAPDecision.decide(request(address: "", mechanism: "NULL", credentials: nil), policies: policies),
            .allowed(curveKey: nil), "ipc and inproc peers have no address")
    }

    func testCurveKeysOutsideTheListAreDeniedAndAllowedKeysBecomeTheUser() {
        let policies = ["xpub": ZAPPolicy(allowedKeys: [key], allowedAddresses: [])]
        XCTAssertEqual(
            ZAPDecision.decide(request(mechanism: "CURVE", credentials: key), policies: policies),
            .allowed(curveKey: key))
        XCTAssertEqual(
            ZAPDecision.decide(request(mechanism: "CURVE", credentials: otherKey), policies: policies),
            .denied(reason: "public key not allowed"))
        XCTAssertEqual(
            ZAPDecision.decide(request(mechanism: "CURVE", credentials: nil), policies: policies),
            .denied(reason: "public key not allowed"))
    }

    func testTheReplyCarriesTheRequestIDAndStatus() {
        XCTAssertEqual(
            ZAPDecision.reply(requestID: Array("42".utf8), code: "200", text: "OK", user: "u"),
            [Array("1.0".utf8), Array("42".utf8), Array("200".utf8), Array("OK".utf8), Array("u".utf8), []])
    }

    /// A reload checks the connected clients again only where the lists got narrower.
    func testAPolicyAdmitsEveryClientOfAnotherOnlyWhenItsListsCoverTheOthers() {
        let (a, b) = ([UInt8](repeating: 1, count: 32), [UInt8](repeating: 2, count: 32))
        func policy(_ keys: Set<[UInt8]>?, _ blocks: [String]) -> ZAPPolicy {
            ZAPPolicy(allowedKeys: keys, allowedAddresses: blocks.compactMap(CIDR.init))
        }
        let open = ZAPPolicy.open
        XCTAssertTrue(open.admitsEveryClientOf(policy([a], ["10.0.0.0/8"]), curve: true))
        XCTAssertFalse(policy([a, b], []).admitsEveryClientOf(open, curve: true), "any key, then a list")
        XCTAssertTrue(policy([a, b], []).admitsEveryClientOf(open, curve: false), "keys count under CURVE only")
        XCTAssertTrue(policy([a, b], []).admitsEveryClientOf(policy([a], []), curve: true))
        XCTAssertFalse(policy([b], []).admitsEveryClientOf(policy([a, b], []), curve: true), "a key taken out")
        XCTAssertFalse(policy(nil, ["10.0.0.0/8"]).admitsEveryClientOf(open, curve: false))
        XCTAssertTrue(policy(nil, ["10.0.0.0/8"]).admitsEveryClientOf(policy(nil, ["10.1.0.0/16"]), curve: false))
        XCTAssertFalse(policy(nil, ["10.1.0.0/16"]).admitsEveryClientOf(policy(nil, ["10.0.0.0/8"]), curve: false))
        XCTAssertFalse(
            policy(nil, ["10.0.0.0/8"]).admitsEveryClientOf(policy(nil, ["10.0.0.0/8", "127.0.0.1"]), curve: false))
        XCTAssertTrue(
            policy(nil, ["127.0.0.0/8", "10.0.0.0/8"]).admitsEveryClientOf(policy(nil, ["127.0.0.1"]), curve: false))
        XCTAssertFalse(policy(nil, ["::1"]).admitsEveryClientOf(policy(nil, ["127.0.0.1"]), curve: false))
    }
}
