import Foundation
import XCTest
import ZPubCore

#if canImport(Glibc)
    import Glibc
#endif

final class TextFileTests: XCTestCase {
    func testReadsKindsAndEntries() throws {
        let directory = "/tmp/zpub-textfile-\(getpid())"
        mkdir(directory, 0o700)
        defer {
            unlink("\(directory)/a.key")
            unlink("\(directory)/b.key")
            rmdir(directory)
        }
        for (name, text) in [("b.key", "second\n"), ("a.key", "first é\n")] {
            let file = open("\(directory)/\(name)", O_WRONLY | O_CREAT | O_TRUNC, 0o640)
            _ = Array(text.utf8).withUnsafeBytes { write(file, $0.baseAddress, $0.count) }
            close(file)
        }
        XCTAssertEqual(try TextFile.read("\(directory)/a.key"), "first é\n")
        XCTAssertEqual(try TextFile.entries(directory), ["a.key", "b.key"])
        XCTAssertEqual(TextFile.kind(directory), .directory)
        XCTAssertEqual(TextFile.kind("\(directory)/b.key"), .file(mode: 0o640))
        XCTAssertEqual(TextFile.kind("\(directory)/none"), .missing)
        XCTAssertThrowsError(try TextFile.read("\(directory)/none")) { error in
            XCTAssertEqual((error as? TextFile.ReadError)?.reason, "No such file or directory")
        }
        XCTAssertThrowsError(try TextFile.read(directory), "a directory is not a text file")
    }

    /// A FIFO (or any file that is not a regular file) is refused with what it is, at once: its
    /// open used to wait for a writer, on the thread that handles SIGTERM and RELOAD. Should the
    /// read block, a writer is let in after 10 s so that the test fails instead of hanging.
    func testAFIFOIsRefusedWithoutWaitingForAWriter() throws {
        let path = "/tmp/zpub-textfile-fifo-\(getpid())"
        XCTAssertEqual(mkfifo(path, 0o600), 0)
        defer { unlink(path) }
        let outcome = Locked<Result<[UInt8], TextFile.ReadError>?>(nil)
        let finished = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            do throws(TextFile.ReadError) {
                let bytes = try TextFile.readBytes(path)
                outcome.withLock { $0 = .success(bytes) }
            } catch {
                outcome.withLock { $0 = .failure(error) }
            }
            finished.signal()
        }
        if finished.wait(timeout: .now() + 10) == .timedOut {
            close(open(path, O_WRONLY))
            finished.wait()
            return XCTFail("reading a FIFO waited for a writer")
        }
        guard case .failure(let error) = outcome.withLock({ $0 }) else { return XCTFail("a FIFO must be refused") }
        XCTAssertTrue(error.reason.hasPrefix("it is a FIFO (named pipe), not a regular file"), error.reason)
        XCTAssertThrowsError(try TextFile.read("/dev/null")) { error in
            XCTAssertTrue("\(error)".hasPrefix("it is a character device"), "\(error)")
        }
    }

    /// A byte that is not UTF-8 (Latin-1's é in a comment) is placed by line and column.
    func testInvalidUTF8IsPlacedByLineAndColumn() throws {
        let path = "/tmp/zpub-textfile-latin1-\(getpid())"
        defer { unlink(path) }
        let bytes = Array("[limits]\n# caf".utf8) + [0xE9] + Array(" au lait\n".utf8)
        let file = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        _ = bytes.withUnsafeBytes { write(file, $0.baseAddress, $0.count) }
        close(file)
        XCTAssertThrowsError(try TextFile.read(path)) { error in
            XCTAssertTrue(
                "\(error)".hasPrefix("not valid UTF-8 text: line 2, column 6 (byte 14 of the file is 0xE9)"), "\(error)"
            )
        }
    }
}
