import Foundation
import XCTest

@testable import Systemd

/// sd_notify speaks to whatever datagram socket NOTIFY_SOCKET names: the test is the listener.
final class NotifierTests: XCTestCase {
    private var listener: Int32 = -1
    private var path = ""

    override func setUpWithError() throws {
        path = NSTemporaryDirectory() + "zpub-notify-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock"
        listener = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        XCTAssertGreaterThanOrEqual(listener, 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in
            for (i, byte) in path.utf8.enumerated() { buffer[i] = byte }
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(listener, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        XCTAssertEqual(bound, 0)
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(listener, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setenv("NOTIFY_SOCKET", path, 1)
    }

    override func tearDown() {
        unsetenv("NOTIFY_SOCKET")
        close(listener)
        unlink(path)
    }

    private func receive() -> String? {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = recv(listener, &buffer, buffer.count, 0)
        return count > 0 ? String(decoding: buffer[0..<count], as: UTF8.self) : nil
    }

    func testReadyCarriesStatus() {
        let notifier = Notifier()
        XCTAssertTrue(notifier.isActive)
        notifier.ready(status: "forwarding")
        XCTAssertEqual(receive(), "READY=1\nSTATUS=forwarding")
    }

    func testReloadingCarriesMonotonicTime() throws {
        Notifier().reloading()
        let message = try XCTUnwrap(receive())
        XCTAssertTrue(message.hasPrefix("RELOADING=1\nMONOTONIC_USEC="), message)
        let usec = UInt64(message.split(separator: "=").last ?? "") ?? 0
        XCTAssertGreaterThan(usec, 0)
    }

    func testStoppingAndWatchdog() {
        Notifier().stopping()
        XCTAssertEqual(receive(), "STOPPING=1")
        Notifier().watchdogPing()
        XCTAssertEqual(receive(), "WATCHDOG=1")
    }

    func testWatchdogIntervalComesFromTheEnvironment() {
        XCTAssertNil(Notifier().watchdogIntervalMicroseconds())
        setenv("WATCHDOG_USEC", "2000000", 1)
        setenv("WATCHDOG_PID", "\(getpid())", 1)
        defer {
            unsetenv("WATCHDOG_USEC")
            unsetenv("WATCHDOG_PID")
        }
        XCTAssertEqual(Notifier().watchdogIntervalMicroseconds(), 2_000_000)
    }
}
