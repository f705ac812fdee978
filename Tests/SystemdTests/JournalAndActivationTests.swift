import Foundation
import Logging
import XCTest

@testable import Systemd

final class JournalLogHandlerTests: XCTestCase {
    func testPriorityPerLevelFollowsSyslog() {
        XCTAssertEqual(JournalLogHandler.priority(of: .critical), 2)
        XCTAssertEqual(JournalLogHandler.priority(of: .error), 3)
        XCTAssertEqual(JournalLogHandler.priority(of: .warning), 4)
        XCTAssertEqual(JournalLogHandler.priority(of: .notice), 5)
        XCTAssertEqual(JournalLogHandler.priority(of: .info), 6)
        XCTAssertEqual(JournalLogHandler.priority(of: .debug), 7)
    }

    func testMetadataBecomesJournalFields() {
        let fields = JournalLogHandler.fields(
            message: "cannot bind", level: .error, label: "zpubd",
            metadata: ["endpoint": "tcp://x:1", "peer-address": "1.2.3.4", "_private": "x"])
        XCTAssertEqual(
            fields,
            [
                "MESSAGE=cannot bind", "PRIORITY=3", "SYSLOG_IDENTIFIER=zpubd", "PRIVATE=x", "ENDPOINT=tcp://x:1",
                "PEER_ADDRESS=1.2.3.4",
            ])
    }

    func testStderrIsJournalOnlyWhenTheStreamMatches() {
        unsetenv("JOURNAL_STREAM")
        XCTAssertFalse(JournalLogHandler.stderrIsJournal)
        setenv("JOURNAL_STREAM", "1:2", 1)
        defer { unsetenv("JOURNAL_STREAM") }
        XCTAssertFalse(JournalLogHandler.stderrIsJournal, "a stderr redirected elsewhere is not the journal")
        var status = stat()
        fstat(2, &status)
        setenv("JOURNAL_STREAM", "\(status.st_dev):\(status.st_ino)", 1)
        XCTAssertTrue(JournalLogHandler.stderrIsJournal)
    }
}

final class SocketActivationTests: XCTestCase {
    func testNoPassedSocketsWithoutTheEnvironment() {
        unsetenv("LISTEN_FDS")
        unsetenv("LISTEN_PID")
        XCTAssertEqual(SocketActivation.listeningSockets(), [])
    }

    func testEndpointOfATCPListener() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        XCTAssertEqual(SocketActivation.endpoint(of: fd), "tcp://127.0.0.1:\(UInt16(bigEndian: address.sin_port))")
    }

    func testEndpointOfAUnixListener() throws {
        let path = NSTemporaryDirectory() + "zpub-activation-\(getpid()).sock"
        defer { unlink(path) }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in
            for (i, byte) in path.utf8.enumerated() { buffer[i] = byte }
        }
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        XCTAssertEqual(SocketActivation.endpoint(of: fd), "ipc://\(path)")
    }
}
