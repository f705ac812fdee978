import XCTest
import ZPubCore

@testable import ZPubBroker

/// The key files a configuration names, as `SecurityMaterial.load` reads them: what a person is
/// told of each problem.
final class SecurityMaterialTests: XCTestCase {
    private var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "zpub-security-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    private func file(_ name: String, _ text: String) throws -> String {
        let url = directory.appendingPathComponent(name)
        try text.write(to: url, atomically: true, encoding: .utf8)
        return url.path
    }

    /// An empty allowed_keys file shuts every CURVE client out, as it should, but more likely
    /// it was not filled yet: said, where it was taken without a word.
    func testAnEmptyListOfAllowedKeysIsSaid() throws {
        var configuration = BrokerConfiguration()
        var pull = SocketSecurity()
        pull.allowedKeys = try file("empty.keys", "# none yet\n")
        configuration.security[.pull] = pull
        let material = try SecurityMaterial.load(for: configuration)
        XCTAssertTrue(
            material.warnings.contains { $0.contains("of [security.pull] holds no key: no CURVE client is let in") },
            "\(material.warnings)")
    }

    /// A server secret key file that holds no key is told as what it should hold: it said
    /// "not a CURVE public key".
    func testABadServerSecretKeyIsToldAsASecretKey() throws {
        var configuration = BrokerConfiguration()
        configuration.serverSecretKeyFile = try file("server.secret", "garbage\n")
        XCTAssertThrowsError(try SecurityMaterial.load(for: configuration)) { error in
            let text = String(describing: error)
            XCTAssertTrue(text.contains("not a CURVE secret key"), text)
            XCTAssertFalse(text.contains("public"), text)
        }
    }
}
