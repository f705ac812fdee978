import Foundation
import XCTest
import ZPubCore

/// The Debian package, built by packaging/build-deb.sh as `make deb` does, but from the debug
/// binaries under test: building the release inside the test run would take minutes, and
/// `make deb` itself builds the release and runs lintian on it.
final class PackageTests: XCTestCase {
    private static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    private var scratch: URL!
    /// The package the tests share (built once: some 8 s each), in a directory of its own.
    nonisolated(unsafe) private static var built: (directory: URL, path: String)?

    override func setUpWithError() throws {
        for tool in ["/usr/bin/dpkg-deb", "/usr/bin/dpkg-shlibdeps", "/usr/bin/lintian", "/usr/bin/man"] {
            try XCTSkipUnless(
                FileManager.default.fileExists(atPath: tool), "\(tool) is missing (make test installs it)")
        }
        scratch = FileManager.default.temporaryDirectory.appendingPathComponent(
            "zpub-package-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    }

    override func tearDown() {
        if let scratch { try? FileManager.default.removeItem(at: scratch) }
    }

    override class func tearDown() {
        if let built { try? FileManager.default.removeItem(at: built.directory) }
        built = nil
    }

    private func run(_ tool: String, _ arguments: [String], environment: [String: String] = [:]) throws -> Run {
        try Run.program(URL(fileURLWithPath: tool), arguments, timeout: 120, environment: environment)
    }

    /// Builds the package from the binaries under test, once for all the tests; returns its path.
    private func buildPackage() throws -> String {
        if let built = Self.built { return built.path }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "zpub-package-built-\(UUID().uuidString.prefix(8))")
        let build = try run(
            Self.repository.appendingPathComponent("packaging/build-deb.sh").path,
            [Binaries.directory.path, directory.path],
            // A debug build links the toolchain's Swift runtime, which no Debian package provides.
            environment: ["ZPUB_DEB_ALLOW_UNPACKAGED_LIBS": "1", "ZPUB_DEB_COMPRESSION": "gzip"])
        XCTAssertEqual(build.status, 0, build.stderr)
        let path = build.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertTrue(path.hasSuffix("zpub_\(ZPubVersion.current)-1_amd64.deb"), path)
        if build.status == 0 { Self.built = (directory, path) }
        return path
    }

    func testPackageHoldsEverythingAndItsZpubdRuns() throws {
        let package = try buildPackage()
        let control = try run("/usr/bin/dpkg-deb", ["--field", package, "Depends"]).stdout
        for library in ["libzmq5", "libsystemd0"] {
            XCTAssertTrue(control.contains(library), "Depends: \(control)")
        }
        XCTAssertFalse(control.contains("-dev"), "runtime libraries only: \(control)")

        let root = scratch.appendingPathComponent("root")
        XCTAssertEqual(try run("/usr/bin/dpkg-deb", ["-x", package, root.path]).status, 0)
        let files = [
            "usr/bin/zpubd", "usr/bin/zpub", "etc/zpub/zpubd.conf", "lib/systemd/system/zpubd.service",
            "lib/systemd/system/zpubd-activated.service", "lib/systemd/system/zpubd.socket",
            "lib/systemd/system/zpubd-pull.socket", "lib/systemd/system/zpubd-xsub.socket",
            "lib/systemd/system/zpubd-xpub.socket",
            "usr/share/man/man1/zpub.1.gz", "usr/share/man/man8/zpubd.8.gz", "usr/share/man/man5/zpubd.conf.5.gz",
            "usr/share/bash-completion/completions/zpub", "usr/share/bash-completion/completions/zpubd",
            "usr/share/zsh/vendor-completions/_zpub", "usr/share/zsh/vendor-completions/_zpubd",
            "usr/share/fish/vendor_completions.d/zpub.fish", "usr/share/fish/vendor_completions.d/zpubd.fish",
            "usr/share/doc/zpub/README.md", "usr/share/doc/zpub/copyright", "usr/share/doc/zpub/changelog.Debian.gz",
            "usr/share/doc/zpub/examples/slow-job/web.py", "usr/share/zpub/xpub-guard.nft",
        ]
        for file in files {
            XCTAssertTrue(FileManager.default.fileExists(atPath: root.appendingPathComponent(file).path), file)
        }
        let unit = try String(
            contentsOf: root.appendingPathComponent("lib/systemd/system/zpubd.service"), encoding: .utf8)
        XCTAssertTrue(unit.contains("ExecStart=/usr/bin/zpubd --config /etc/zpub/zpubd.conf"), unit)
        XCTAssertTrue(unit.contains("ExecReload=+/usr/bin/zpub reload --control ipc:///run/zpub/control.sock"), unit)

        let conffiles = try run("/usr/bin/dpkg-deb", ["--info", package, "conffiles"]).stdout
        XCTAssertEqual(conffiles, "/etc/zpub/zpubd.conf\n")

        let version = try Run.program(root.appendingPathComponent("usr/bin/zpubd"), ["--version"])
        XCTAssertEqual(version.status, 0, version.stderr)
        XCTAssertEqual(version.stdout, "\(ZPubVersion.current)\n")

        // The completions know the commands, and the bash one is valid bash.
        let bash = root.appendingPathComponent("usr/share/bash-completion/completions/zpub").path
        XCTAssertEqual(try run("/bin/bash", ["-n", bash]).status, 0)
        for file in [bash, root.appendingPathComponent("usr/share/fish/vendor_completions.d/zpub.fish").path] {
            let text = try String(contentsOfFile: file, encoding: .utf8)
            XCTAssertTrue(text.contains("top") && text.contains("subscriptions"), file)
        }

        // Every page renders without a warning, from the package, as `man -l` shows it.
        for page in ["man1/zpub.1.gz", "man8/zpubd.8.gz", "man5/zpubd.conf.5.gz"] {
            let path = root.appendingPathComponent("usr/share/man/\(page)").path
            let man = try run("/usr/bin/man", ["--warnings", "-l", path], environment: ["MANWIDTH": "80"])
            XCTAssertEqual(man.status, 0, page)
            XCTAssertEqual(man.stderr, "", page)
            XCTAssertTrue(man.stdout.contains("NAME"), page)
        }
    }

    /// Installs into a scratch root with dpkg itself: the maintainer scripts run (outside a
    /// chroot, with DPKG_ROOT set) and must do nothing where systemd does not run; remove keeps
    /// the edited conffile, purge deletes it.
    func testInstallRemoveAndPurgeIntoAScratchRoot() throws {
        let package = try buildPackage()
        let root = scratch.appendingPathComponent("root")
        let admin = root.appendingPathComponent("var/lib/dpkg")
        for directory in ["info", "updates"] {
            try FileManager.default.createDirectory(
                at: admin.appendingPathComponent(directory), withIntermediateDirectories: true)
        }
        try createEmptyFile(admin.appendingPathComponent("status").path)
        // The libraries it depends on are installed on the machine, not in the scratch root.
        let dpkg = ["--root=\(root.path)", "--force-script-chrootless", "--force-depends", "--force-not-root"]

        let install = try run("/usr/bin/dpkg", dpkg + ["--install", package])
        XCTAssertEqual(install.status, 0, install.stdout + install.stderr)
        let config = root.appendingPathComponent("etc/zpub/zpubd.conf")
        let zpubd = root.appendingPathComponent("usr/bin/zpubd")
        XCTAssertTrue(FileManager.default.fileExists(atPath: zpubd.path))
        XCTAssertEqual(try Run.program(zpubd, ["--config", config.path, "--check-config"]).status, 0)

        try "[limits]\nmax_topics = 5\n".write(to: config, atomically: true, encoding: .utf8)
        // What the service keeps under StateDirectory=zpub with DynamicUser= (history).
        let state = root.appendingPathComponent("var/lib/private/zpub")
        try FileManager.default.createDirectory(at: state, withIntermediateDirectories: true)
        try createEmptyFile(state.appendingPathComponent("history.sqlite3").path)
        let remove = try run("/usr/bin/dpkg", dpkg + ["--remove", "zpub"])
        XCTAssertEqual(remove.status, 0, remove.stdout + remove.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: zpubd.path))
        XCTAssertEqual(try String(contentsOf: config, encoding: .utf8), "[limits]\nmax_topics = 5\n")
        XCTAssertTrue(FileManager.default.fileExists(atPath: state.path), "remove keeps the data")

        let purge = try run("/usr/bin/dpkg", dpkg + ["--purge", "zpub"])
        XCTAssertEqual(purge.status, 0, purge.stdout + purge.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: config.path))
        XCTAssertFalse(FileManager.default.fileExists(atPath: state.path), "purge removes the history")
    }

    /// lintian finds no error and no warning, apart from the ones packaging/deb/lintian-kept
    /// explains and, for this debug build only, its RUNPATH into the Swift toolchain (the
    /// release build links the Swift runtime statically and has none).
    func testLintianIsClean() throws {
        let package = try buildPackage()
        let lintian = try run(
            "/usr/bin/lintian",
            [
                "--fail-on", "error,warning", "--suppress-tags-from-file",
                Self.repository.appendingPathComponent("packaging/deb/lintian-kept").path,
                "--suppress-tags", "custom-library-search-path", package,
            ])
        XCTAssertEqual(lintian.status, 0, lintian.stdout + lintian.stderr)
        XCTAssertFalse(lintian.stdout.contains("E: "), lintian.stdout)
        XCTAssertFalse(lintian.stdout.contains("W: "), lintian.stdout)
    }
}
