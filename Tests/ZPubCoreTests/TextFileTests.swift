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
}
