import XCTest

@testable import ZPubCore

final class SecurityConfigurationTests: XCTestCase {
    func testCIDRMatching() throws {
        let block = try XCTUnwrap(CIDR("10.0.0.0/8"))
        XCTAssertTrue(block.contains("10.1.2.3"))
        XCTAssertFalse(block.contains("11.0.0.1"))
        XCTAssertTrue(block.contains("::ffff:10.9.9.9"), "IPv4-mapped addresses count as IPv4")
        XCTAssertTrue(try XCTUnwrap(CIDR("::1")).contains("::1"))
        XCTAssertFalse(try XCTUnwrap(CIDR("::1")).contains("::2"))
        XCTAssertTrue(try XCTUnwrap(CIDR("fe80::/10")).contains("fe80::1%eth0"))
        XCTAssertTrue(try XCTUnwrap(CIDR("0.0.0.0/0")).contains("8.8.8.8"))
        XCTAssertTrue(try XCTUnwrap(CIDR("192.168.1.0/23")).contains("192.168.0.200"))
        XCTAssertFalse(try XCTUnwrap(CIDR("192.168.1.0/24")).contains("192.168.0.200"))
        for bad in ["10.0.0.0/33", "nonsense", "1.2.3", "::1/129", ""] { XCTAssertNil(CIDR(bad), bad) }
    }

    func testLoopbackDetection() {
        for endpoint in [
            "tcp://127.0.0.1:1", "tcp://127.5.5.5:1", "tcp://localhost:1", "tcp://[::1]:1", "ipc:///x", "inproc://x",
        ] {
            XCTAssertTrue(Endpoint.isLoopbackOnly(endpoint), endpoint)
        }
        for endpoint in ["tcp://*:1", "tcp://0.0.0.0:1", "tcp://10.0.0.1:1", "tcp://eth0:1", "epgm://eth0;239.1.1.1:5"]
        {
            XCTAssertFalse(Endpoint.isLoopbackOnly(endpoint), endpoint)
        }
    }

    func testKeyListsAllowZ85HashesInsideKeys() {
        let key = "KGUo3no$9#eB6qSt>?k0ijqx5)BUbXA^D20XEP-*"
        XCTAssertEqual(try KeyList.parse("# a comment\n\n  \(key)  \n").get(), [key])
        guard case .failure(let problem) = KeyList.parse("\(key)\nshort\n") else { return XCTFail() }
        XCTAssertEqual(problem.line, 2)
    }

    /// zpub keygen's header names the kind; a file without it is taken as it is.
    func testAKeyFileOfTheOtherKindIsNamedWithTheFileToUse() {
        let key = "KGUo3no$9#eB6qSt>?k0ijqx5)BUbXA^D20XEP-*"
        let publicText = "# CURVE public key, written by zpub keygen\n\(key)\n"
        let secretText = "# CURVE secret key, written by zpub keygen\n\(key)\n"
        XCTAssertEqual(KeyList.declaredKind(publicText), .public)
        XCTAssertEqual(KeyList.declaredKind(secretText), .secret)
        XCTAssertNil(KeyList.declaredKind("# my key\n\(key)\n"))
        XCTAssertNil(KeyList.declaredKind("\(key)\n"))
        XCTAssertNil(KeyList.wrongKind(publicText, path: "/k/a.public", wanted: .public))
        XCTAssertNil(KeyList.wrongKind("\(key)\n", path: "/k/a.public", wanted: .secret))
        XCTAssertEqual(
            KeyList.wrongKind(publicText, path: "/k/server.public", wanted: .secret),
            "/k/server.public holds a CURVE public key (its first line says so), not a secret one: use /k/server.secret"
        )
        XCTAssertEqual(
            KeyList.wrongKind(secretText, path: "/k/key", wanted: .public),
            "/k/key holds a CURVE secret key (its first line says so), not a public one: use the public key file of that pair (NAME.public)"
        )
    }

    func testSecuritySectionsAreValidated() throws {
        let good = try ConfigurationFile.parse(
            """
            [security]
            server_secret_key_file = "/etc/zpub/server.secret"
            control_ipc_mode = "0600"
            [security.pull]
            curve = true
            allowed_keys = "/etc/zpub/clients"
            allowed_addresses = ["10.0.0.0/8", "127.0.0.1", "::1"]
            """
        ).get()
        XCTAssertEqual(good.security(for: .pull).curve, true)
        XCTAssertEqual(good.security(for: .pull).allowedAddresses, ["10.0.0.0/8", "127.0.0.1", "::1"])
        XCTAssertEqual(good.controlIPCMode.bits, 0o600)
        XCTAssertFalse(good.security(for: .xpub).curve)

        func problems(_ text: String) -> [ConfigurationProblem] {
            if case .failure(let failure) = ConfigurationFile.parse(text) { return failure.problems }
            return []
        }
        XCTAssertTrue(
            problems("[security.xpub]\ncurve = true\n").contains { $0.message.contains("no server_secret_key_file") })
        XCTAssertTrue(
            problems("[security.xpub]\nallowed_keys = \"/k\"\n").contains { $0.message.contains("needs curve = true") })
        XCTAssertEqual(problems("[security.xpub]\nallowed_addresses = [\"10.0.0.0/99\"]\n").first?.line, 2)
        // Loopback endpoints' clients come from 127.0.0.1 or ::1: a list without it admits none.
        let loopback = problems(
            "[endpoints]\nxpub = [\"tcp://127.0.0.2:5556\", \"tcp://[::1]:5557\", \"tcp://*:5559\"]\n"
                + "[security.xpub]\nallowed_addresses = [\"10.0.0.0/8\"]\n")
        XCTAssertEqual(loopback.map(\.line), [4, 4])
        XCTAssertTrue(loopback.first?.message.contains("Add \"127.0.0.1\"") == true, "\(loopback)")
        XCTAssertTrue(loopback.last?.message.contains("Add \"::1\"") == true, "\(loopback)")
        XCTAssertEqual(
            problems(
                "[endpoints]\nxpub = [\"tcp://127.0.0.1:5556\", \"tcp://[::1]:5557\"]\n"
                    + "[security.xpub]\nallowed_addresses = [\"127.0.0.0/8\", \"::1\"]\n"), [])
        XCTAssertTrue(
            problems("[endpoints]\ncontrol = [\"tcp://*:5555\"]\n").contains {
                $0.message.contains("without CURVE") && $0.line == 2
            })
        XCTAssertTrue(problems("[security.bogus]\ncurve = true\n").contains { $0.message.contains("unknown section") })
        // Multicast carries no ZeroMQ handshake: security settings on its socket would be a lie.
        let multicast = problems(
            """
            [endpoints]
            xpub = ["tcp://*:5556", "epgm://eth0;239.192.1.1:5597"]
            [security]
            server_secret_key_file = "/k"
            [security.xpub]
            curve = true
            """)
        XCTAssertTrue(
            multicast.contains { $0.message.contains("cannot protect epgm://eth0;239.192.1.1:5597") && $0.line == 6 },
            "\(multicast)")
        XCTAssertTrue(
            problems(
                "[endpoints]\nxpub = [\"epgm://eth0;239.192.1.1:5597\"]\n[security.xpub]\nallowed_addresses = [\"10.0.0.0/8\"]\n"
            )
            .contains { $0.message.contains("cannot protect") })
        XCTAssertFalse(
            problems("[endpoints]\nxpub = [\"tcp://127.0.0.1:5556\", \"epgm://eth0;239.192.1.1:5597\"]\n")
                .contains { $0.message.contains("cannot protect") },
            "multicast without security settings is allowed (with a warning at start)")
    }
}
