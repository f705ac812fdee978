import Foundation
import XCTest

/// `make install` / `make uninstall` into a scratch DESTDIR, with the binaries under test.
final class InstallTests: XCTestCase {
    private var repository: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
    }

    private func make(_ arguments: [String]) throws -> Run {
        try Run.program(
            URL(fileURLWithPath: "/usr/bin/make"), ["-C", repository.path, "--no-print-directory"] + arguments)
    }

    func testInstallKeepsAnEditedConfigAndUninstallRemovesTheRest() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent(
            "zpub-install-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: root) }
        let variables = [
            "DESTDIR=\(root.path)", "PREFIX=/usr", "UNITDIR=/lib/systemd/system", "BINARIES=\(Binaries.directory.path)",
        ]
        let install = try make(["install-files"] + variables)
        XCTAssertEqual(install.status, 0, install.stderr)

        let files =
            ["usr/bin/zpubd", "usr/bin/zpub", "etc/zpub/zpubd.conf", "usr/share/zpub/xpub-guard.nft"]
            + [
                "zpubd.service", "zpubd-activated.service", "zpubd.socket", "zpubd-pull.socket", "zpubd-xsub.socket",
                "zpubd-xpub.socket",
            ].map { "lib/systemd/system/\($0)" }
        for file in files {
            XCTAssertTrue(FileManager.default.fileExists(atPath: root.appendingPathComponent(file).path), file)
        }
        let unit = try String(
            contentsOf: root.appendingPathComponent("lib/systemd/system/zpubd.service"), encoding: .utf8)
        XCTAssertTrue(unit.contains("ExecStart=/usr/bin/zpubd --config /etc/zpub/zpubd.conf"), unit)
        XCTAssertTrue(unit.contains("ExecReload=+/usr/bin/zpub reload --control ipc:///run/zpub/control.sock"), unit)
        XCTAssertFalse(unit.contains("/usr/local/bin"))
        let version = try Run.program(root.appendingPathComponent("usr/bin/zpubd"), ["--version"])
        XCTAssertEqual(version.status, 0)

        // An edited configuration survives a second install and an uninstall.
        let config = root.appendingPathComponent("etc/zpub/zpubd.conf")
        try "[limits]\nmax_topics = 5\n".write(to: config, atomically: true, encoding: .utf8)
        XCTAssertEqual(try make(["install-files"] + variables).status, 0)
        XCTAssertEqual(try String(contentsOf: config, encoding: .utf8), "[limits]\nmax_topics = 5\n")
        let uninstall = try make(["uninstall"] + variables)
        XCTAssertEqual(uninstall.status, 0, uninstall.stderr)
        XCTAssertTrue(uninstall.stdout.contains("keeping"), uninstall.stdout)
        XCTAssertTrue(FileManager.default.fileExists(atPath: config.path))
        for file in files.filter({ !$0.hasPrefix("etc/") }) {
            XCTAssertFalse(FileManager.default.fileExists(atPath: root.appendingPathComponent(file).path), file)
        }

        // An unchanged sample configuration goes with uninstall.
        try FileManager.default.removeItem(at: config)
        XCTAssertEqual(try make(["install-files"] + variables).status, 0)
        XCTAssertEqual(try make(["uninstall"] + variables).status, 0)
        XCTAssertFalse(FileManager.default.fileExists(atPath: config.path))
    }
}
