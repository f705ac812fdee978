import Foundation
import XCTest

/// The committed man pages against what they describe: man/zpub.1 and man/zpubd.8 are
/// generated (`make man`) from the argument parsers, so every command, option and flag the
/// binaries have must be in them; man/zpubd.conf.5 is written by hand from the sample
/// configuration, so every section and key of etc/zpub/zpubd.conf must be in it.
final class ManPageTests: XCTestCase {
    private static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    private func page(_ name: String) throws -> String {
        try String(contentsOf: Self.repository.appendingPathComponent("man/\(name)"), encoding: .utf8)
    }

    /// Every command and every option name, from the parser's own description of itself.
    private func commandLine(of binary: URL) throws -> (commands: [String], options: [String]) {
        let dump = try Run.program(binary, ["--experimental-dump-help"])
        XCTAssertEqual(dump.status, 0, dump.stderr)
        let root = try XCTUnwrap(
            JSONSerialization.jsonObject(with: Data(dump.stdout.utf8)) as? [String: Any])
        var commands: [String] = []
        var options: Set<String> = []
        func walk(_ command: [String: Any], top: Bool) {
            if !top, let name = command["commandName"] as? String { commands.append(name) }
            for argument in command["arguments"] as? [[String: Any]] ?? [] {
                for name in argument["names"] as? [[String: Any]] ?? [] {
                    guard let kind = name["kind"] as? String, let text = name["name"] as? String else { continue }
                    options.insert(kind == "short" ? "Fl \(text)" : "-\(text)")
                }
            }
            for sub in command["subcommands"] as? [[String: Any]] ?? [] { walk(sub, top: false) }
        }
        walk(try XCTUnwrap(root["command"] as? [String: Any]), top: true)
        return (commands, options.sorted())
    }

    /// Whether the page lists `option`: `Fl c` for a short name; a long one appears as
    /// `Fl -name`, or `Fl c , -name` beside its short name.
    private static func names(_ page: String, _ option: String) -> Bool {
        option.hasPrefix("Fl ")
            ? page.contains(option)
            : page.contains("Fl \(option)") || page.contains(", \(option) ")
                || page.contains(", \(option)\n")
    }

    func testZpubPageNamesEveryCommandAndOption() throws {
        let page = try page("zpub.1")
        let (commands, options) = try commandLine(of: Binaries.zpub)
        XCTAssertTrue(commands.contains("top"))
        for command in commands {
            XCTAssertTrue(page.contains(".It Em \(command)\n"), "\(command) is not in man/zpub.1: run make man")
        }
        for option in options {
            XCTAssertTrue(Self.names(page, option), "\(option) is not in man/zpub.1: run make man")
        }
    }

    /// Every help text the binaries show (commands' abstracts and discussions, options' help),
    /// and the hand-written tail, word for word in the committed page: the page is generated,
    /// and a help text changed without `make man`, or the page edited by hand (which the next
    /// `make man` undoes: it dropped two such edits on 2026-12-06), shows here.
    func testPagesAreWhatMakeManWrites() throws {
        for (binary, name) in [(Binaries.zpub, "zpub.1"), (Binaries.zpubd, "zpubd.8")] {
            let page = try page(name)
            let texts = try helpTexts(of: binary)
            XCTAssertGreaterThan(texts.count, 15, name)
            for text in texts {
                // roff shows a backslash as \e.
                let written = text.replacingOccurrences(of: "\\", with: "\\e")
                XCTAssertTrue(page.contains(written), "\(name) lacks the help text \"\(text)\": run make man")
            }
            let tail = try self.page(name + ".tail")
            XCTAssertTrue(page.contains(tail), "\(name) does not end with \(name).tail: run make man")
        }
    }

    /// The help texts of every command and option, from the parser's description of itself
    /// (the implicit `help` command aside, which zpubd's page leaves out).
    private func helpTexts(of binary: URL) throws -> [String] {
        let dump = try Run.program(binary, ["--experimental-dump-help"])
        let root = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(dump.stdout.utf8)) as? [String: Any])
        var texts: [String] = []
        func walk(_ command: [String: Any], top: Bool) {
            guard command["commandName"] as? String != "help" || top else { return }
            if !top, let abstract = command["abstract"] as? String { texts.append(abstract) }
            texts += (command["discussion"] as? String ?? "").components(separatedBy: "\n\n")
            for argument in command["arguments"] as? [[String: Any]] ?? []
            where argument["shouldDisplay"] as? Bool != false {
                texts += [argument["abstract"] as? String, argument["discussion"] as? String].compactMap { $0 }
            }
            for sub in command["subcommands"] as? [[String: Any]] ?? [] { walk(sub, top: false) }
        }
        walk(try XCTUnwrap(root["command"] as? [String: Any]), top: true)
        return texts.filter { !$0.isEmpty }
    }

    func testZpubdPageNamesEveryOption() throws {
        let page = try page("zpubd.8")
        let (_, options) = try commandLine(of: Binaries.zpubd)
        XCTAssertTrue(options.contains("-config"))
        for option in options {
            XCTAssertTrue(Self.names(page, option), "\(option) is not in man/zpubd.8: run make man")
        }
        XCTAssertFalse(page.contains(".Ar subcommand"), "zpubd has no subcommands")
    }

    func testConfigurationPageNamesEverySectionAndKeyOfTheSample() throws {
        let page = try page("zpubd.conf.5")
        let sample = try String(
            contentsOf: Self.repository.appendingPathComponent("etc/zpub/zpubd.conf"), encoding: .utf8)
        var keys: Set<String> = []
        var sections: Set<String> = []
        for line in sample.split(separator: "\n").map(String.init) {
            if line.hasPrefix("[") { sections.insert(line) }
            // Keys set, and keys shown commented out (`# curve = true  ...`).
            let text = line.drop { $0 == "#" || $0 == " " }
            if let end = text.range(of: " = "), text[..<end.lowerBound].allSatisfy({ $0.isLowercase || $0 == "_" }) {
                keys.insert(String(text[..<end.lowerBound]))
            }
        }
        XCTAssertGreaterThan(keys.count, 20)
        for section in sections {
            XCTAssertTrue(page.contains(section), "\(section) is not in man/zpubd.conf.5")
        }
        for key in keys {
            XCTAssertTrue(page.contains("Cm \(key) "), "\(key) is not in man/zpubd.conf.5")
        }
    }

    func testPagesRenderWithoutWarnings() throws {
        try XCTSkipUnless(FileManager.default.fileExists(atPath: "/usr/bin/groff"), "groff is not installed")
        for name in ["zpub.1", "zpubd.8", "zpubd.conf.5"] {
            let path = Self.repository.appendingPathComponent("man/\(name)").path
            let groff = try Run.program(URL(fileURLWithPath: "/usr/bin/groff"), ["-mandoc", "-ww", "-z", path])
            XCTAssertEqual(groff.status, 0, name)
            XCTAssertEqual(groff.stderr, "", name)
        }
    }
}
