import Foundation
import XCTest

@testable import ZPubCore

final class ConfigurationFileTests: XCTestCase {
    private func problems(_ text: String) -> [ConfigurationProblem] {
        if case .failure(let failure) = ConfigurationFile.parse(text) { return failure.problems }
        return []
    }

    func testEmptyFileGivesTheDefaults() throws {
        XCTAssertEqual(try ConfigurationFile.parse("").get(), BrokerConfiguration())
        XCTAssertEqual(try ConfigurationFile.parse("# only a comment\n\n").get(), BrokerConfiguration())
    }

    /// The shipped sample must parse, and must say exactly the defaults (it documents them).
    func testSampleFileParsesToTheDefaults() throws {
        let sample = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("etc/zpub/zpubd.conf")
        let text = try String(contentsOf: sample, encoding: .utf8)
        XCTAssertEqual(try ConfigurationFile.parse(text).get(), BrokerConfiguration())
    }

    /// A value refused is told once, by its own problem: the key keeps its default, which the
    /// validation of the whole would blame again (a refused role was also "no role").
    func testARefusedValueIsNotToldAgainByTheValidation() {
        let told = problems(
            """
            [ha]
            role = "Primary"
            bind = "tcp://127.0.0.1:27300"
            peer = "tcp://127.0.0.1:27400"
            """)
        XCTAssertEqual(told.map(\.line), [2], "\(told)")
        XCTAssertTrue(told.first?.message.contains("Primary") == true, "\(told)")
        // Nor by a key that needs a role (it was "[ha] has failover_ms but no role", line 3).
        let misspelt = problems("[ha]\nrole = \"primry\"\nfailover_ms = 1000\n")
        XCTAssertEqual(misspelt.map(\.line), [2], "\(misspelt)")
        // Without a role at all, the validation's own problem stays.
        let missing = problems("[ha]\nbind = \"tcp://127.0.0.1:27300\"\npeer = \"tcp://127.0.0.1:27400\"\n")
        XCTAssertEqual(
            missing.map(\.message), ["[ha] has bind or peer but no role; set role = \"primary\" or \"backup\""])
    }

    /// A key that takes an array takes one string as an array of one (man/zpubd.conf.5).
    func testOneStringIsAnArrayOfOne() throws {
        let configuration = try ConfigurationFile.parse(
            """
            [endpoints]
            xpub = "tcp://127.0.0.1:7001"
            upstream = "tcp://127.0.0.1:7002"
            [last_value]
            prefixes = "state."
            [history]
            prefixes = "log."
            """
        ).get()
        XCTAssertEqual(configuration.endpoints(for: .xpub), ["tcp://127.0.0.1:7001"])
        XCTAssertEqual(configuration.upstreamEndpoints, ["tcp://127.0.0.1:7002"])
        XCTAssertEqual(configuration.lastValuePrefixes, ["state."])
        XCTAssertEqual(configuration.historyPrefixes, ["log."])
    }

    func testEveryKeyIsRead() throws {
        let text = """
            [daemon]
            log_level = "debug"   # comment after a value
            topic_accounting = false
            shutdown_drain_ms = 5
            [endpoints]
            control = []
            xpub = [
              "ipc:///tmp/x.sock",  # a comment inside an array
              "tcp://*:1000",
            ]
            pull = "inproc://in"
            xsub = []
            [sockets]
            send_hwm = 1_000
            receive_hwm = 2
            linger_ms = 3
            max_message_size = 4096
            handshake_timeout_ms = 5
            io_threads = 4
            multicast_rate_kbps = 50000
            heartbeat_interval_ms = 0
            heartbeat_timeout_ms = 7
            tcp_keepalive_idle_s = 11
            tcp_keepalive_interval_s = 12
            tcp_keepalive_count = 13
            [limits]
            max_topics = 8
            max_subscriptions = 9
            max_subscription_length = 10
            max_control_request = 100
            [last_value]
            on_subscribe = false
            """
        let configuration = try ConfigurationFile.parse(text).get()
        XCTAssertEqual(configuration.logLevel, "debug")
        XCTAssertFalse(configuration.topicAccounting)
        XCTAssertEqual(configuration.shutdownDrainMilliseconds, 5)
        XCTAssertEqual(configuration.controlEndpoints, [])
        XCTAssertEqual(configuration.xpubEndpoints, ["ipc:///tmp/x.sock", "tcp://*:1000"])
        XCTAssertEqual(configuration.pullEndpoints, ["inproc://in"])
        XCTAssertEqual(configuration.sendHighWaterMark, 1000)
        XCTAssertEqual(configuration.receiveHighWaterMark, 2)
        XCTAssertEqual(configuration.lingerMilliseconds, 3)
        XCTAssertEqual(configuration.maxMessageSize, 4096)
        XCTAssertEqual(configuration.handshakeMilliseconds, 5)
        XCTAssertEqual(configuration.ioThreads, 4)
        XCTAssertEqual(configuration.multicastRateKbps, 50000)
        XCTAssertEqual(configuration.heartbeatIntervalMilliseconds, 0)
        XCTAssertEqual(configuration.heartbeatTimeoutMilliseconds, 7)
        XCTAssertEqual(
            [
                configuration.tcpKeepaliveIdleSeconds, configuration.tcpKeepaliveIntervalSeconds,
                configuration.tcpKeepaliveCount,
            ], [11, 12, 13])
        XCTAssertEqual(configuration.maxTopics, 8)
        XCTAssertEqual(configuration.maxSubscriptions, 9)
        XCTAssertEqual(configuration.maxSubscriptionLength, 10)
        XCTAssertEqual(configuration.maxControlRequest, 100)
        XCTAssertFalse(configuration.lastValueOnSubscribe)
        XCTAssertTrue(BrokerConfiguration().lastValueOnSubscribe, "on by default")
        guard case .failure(let report) = ConfigurationFile.parse("[last_value]\non_subscribe = 1\n") else {
            return XCTFail("on_subscribe = 1 is refused")
        }
        XCTAssertTrue(
            report.problems.map(\.message).joined().contains("on_subscribe must be true or false"), "\(report.problems)"
        )
    }

    func testReportsEveryProblemWithItsLine() {
        let found = problems(
            """
            [daemon]
            log_level = "loud"
            colour = "blue"
            [sockets]
            send_hwm = "many"
            linger_ms = -1
            [bogus]
            key = 1
            [limits]
            max_topics = 5 6
            max_subscriptions = 7
            max_subscriptions = 8
            """)
        XCTAssertEqual(found.map(\.line), [2, 3, 5, 6, 7, 10, 12])
        XCTAssertTrue(found[0].message.contains("not a log level"))
        XCTAssertTrue(found[1].message.contains("unknown key colour"))
        XCTAssertTrue(found[2].message.contains("must be an integer"))
        XCTAssertTrue(found[3].message.contains("out of range"))
        XCTAssertTrue(found[4].message.contains("unknown section [bogus]"))
        XCTAssertTrue(found[6].message.contains("set twice"))
    }

    func testSyntaxErrors() {
        XCTAssertEqual(problems("log_level = \"info\"").first?.line, 1, "keys outside a section are unknown")
        XCTAssertTrue(problems("[daemon]\nlog_level = \"unterminated\n").first!.message.contains("no closing quote"))
        // A backslash ending the line does not take the newline (and the next line) with it:
        // the next lines are still read, and their line numbers still right.
        let afterBackslash = problems(
            "[history]\ndirectory = \"/var/lib/zpub\\\nmax_messages = 0\n[limits]\nmax_topics = -1\n")
        XCTAssertEqual(afterBackslash.map(\.line), [2, 3, 5], afterBackslash.map(\.message).joined(separator: "; "))
        XCTAssertTrue(afterBackslash[0].message.contains("no closing quote"))
        XCTAssertFalse(afterBackslash[0].message.contains("\n"))
        XCTAssertTrue(problems("[daemon]\nlog_level\n").first!.message.contains("expected ="))
        XCTAssertTrue(problems("[daemon]\nlog_level =\n").first!.message.contains("missing"))
        XCTAssertTrue(problems("[endpoints]\nxpub = [\"a\"\n").first!.message.contains("no closing ]"))
        XCTAssertTrue(problems("[endpoints]\nxpub = [\"a\" \"b\"]\n").first!.message.contains("expected , or ]"))
        XCTAssertTrue(problems("[endpoints]\nxpub = [1]\n").first!.message.contains("must be strings"))
        XCTAssertTrue(problems("[daemon\n").first!.message.contains("section header"))
        XCTAssertTrue(problems("[sockets]\nsend_hwm = 12abc\n").first!.message.contains("not a value"))
        let quoted = problems("[daemon]\nlog_level = 'info'  # the level\n").first?.message ?? ""
        XCTAssertTrue(quoted.hasPrefix("'info' is in single quotes; strings here take double quotes"), quoted)
        let huge = problems("[sockets]\nsend_hwm = 99_999_999_999_999_999_999\n")
        XCTAssertEqual(huge.first?.line, 2)
        XCTAssertTrue(huge.first?.message.contains("99_999_999_999_999_999_999 is too large") == true, "\(huge)")
        XCTAssertTrue(problems("[limits]\nlog_level = \"x\"\n").first!.message.contains("belongs in [daemon]"))
        let twoHomes = problems("[limits]\nmax_bytes = 1\n").first?.message ?? ""
        XCTAssertTrue(twoHomes.hasSuffix("max_bytes belongs in [last_value] or [history]"), twoHomes)
    }

    /// An array left open is reported at its own line, and the section header or key that
    /// follows is still read as one (it was "arrays inside arrays are not supported" at the
    /// header, and the header was skipped, so its keys landed in the section before).
    func testAnUnclosedArrayIsReportedAtItsLineAndWhatFollowsIsRead() {
        for text in [
            "[last_value]\nprefixes = [\"a\",\n[limits]\nmax_topics = \"x\"\n",
            "[last_value]\nprefixes = [\"a\"\n[limits]\nmax_topics = \"x\"\n",
            "[last_value]\nprefixes = [\n  \"a\",\n  [ limits ]  # the next section\nmax_topics = \"x\"\n",
        ] {
            let found = problems(text)
            XCTAssertEqual(found.map(\.line), [2, found.last?.line ?? 0], text)
            XCTAssertTrue(found.first?.message.hasPrefix("the array has no closing ] (line ") == true, "\(found)")
            XCTAssertTrue(found.first?.message.contains("starts a new section") == true, "\(found)")
            XCTAssertTrue(
                found.last?.message.contains("max_topics must be an integer") == true, "[limits] read: \(found)")
        }
        let key = problems("[last_value]\nprefixes = [\"a\",\nmax_entries = 0\n")
        XCTAssertEqual(key.map(\.line), [2, 3], "\(key)")
        XCTAssertTrue(key.first?.message.contains("line 3 starts a new key") == true, "\(key)")
        XCTAssertTrue(key.last?.message.contains("max_entries = 0 is out of range") == true, "\(key)")
        XCTAssertTrue(
            problems("[endpoints]\nxpub = [[\"a\"]]\n").first?.message.contains("arrays inside arrays") == true)
    }

    /// A byte order mark (Notepad's "UTF-8") is skipped, not taken for the first line's start.
    func testAByteOrderMarkIsSkipped() throws {
        let configuration = try ConfigurationFile.parse("\u{FEFF}[limits]\nmax_topics = 5\n").get()
        XCTAssertEqual(configuration.maxTopics, 5)
    }

    /// A huge value is shown by its start and length, not echoed whole.
    func testALongValueIsCutInTheProblem() {
        let digits = String(repeating: "9", count: 100_000)
        let found = problems("[limits]\nmax_topics = \(digits)\n")
        XCTAssertEqual(found.map(\.line), [2])
        XCTAssertLessThan(found.first?.message.count ?? .max, 200, "\(found.first?.message.prefix(300) ?? "")")
        XCTAssertTrue(found.first?.message.contains("... (100000 characters) is too large") == true)
        let word = problems("[limits]\nmax_topics = \(String(repeating: "x", count: 5_000))\n")
        XCTAssertLessThan(word.first?.message.count ?? .max, 200)
        XCTAssertLessThan(
            problems("[limits]\n\(String(repeating: "k", count: 5_000)) = 1\n").first?.message.count ?? .max, 400)
    }

    func testEndpointProblemsPointAtTheirKey() {
        let found = problems(
            "[endpoints]\n\nxpub = [\"tcp://127.0.0.1\"]\npull = [\"udp://x:1\"]\nxsub = [\"tcp://127.0.0.1:5558\"]\ncontrol = [\"tcp://127.0.0.1:5558\"]\n"
        )
        XCTAssertEqual(found.map(\.line), [3, 4, 6])
        XCTAssertTrue(found[0].message.contains("needs a port"))
        XCTAssertTrue(found[1].message.contains("unknown transport"))
        XCTAssertTrue(found[2].message.contains("both xsub and control"))
        let twice = problems("[endpoints]\nxpub = [\"tcp://127.0.0.1:5556\", \"tcp://127.0.0.1:5556\"]\n")
        XCTAssertEqual(twice.map(\.message), ["xpub endpoint \"tcp://127.0.0.1:5556\" is listed twice; list it once"])
    }

    /// What --check-config passed and the start then refused (a walkthrough): a host name where
    /// libzmq binds only addresses and interfaces, and one port taken twice through a wildcard.
    /// An interface's name, an address and a wildcard alone stay valid.
    func testUnbindableHostsAndAPortTakenTwiceAreFoundBeforeTheStart() {
        let named = problems("[endpoints]\nxpub = [\"tcp://localhost:5556\"]\n")
        XCTAssertEqual(named.map(\.line), [2])
        XCTAssertTrue(named.first?.message.contains("write tcp://127.0.0.1:5556") == true, "\(named)")
        let shared = problems("[endpoints]\nxpub = [\"tcp://*:5556\"]\npull = [\"tcp://127.0.0.1:5556\"]\n")
        XCTAssertEqual(shared.map(\.line), [2])
        XCTAssertTrue(
            shared.first?.message.contains("takes the port of pull endpoint \"tcp://127.0.0.1:5556\"") == true,
            "\(shared)")
        XCTAssertEqual(
            problems(
                "[endpoints]\nxpub = [\"tcp://lo:5556\", \"tcp://[::1]:5559\", \"tcp://[fe80::1%lo]:5560\"]\npull = [\"tcp://127.0.0.1:5557\"]\nxsub = [\"tcp://*:5558\", \"tcp://wg7:5561\"]\n"
            ).map(\.message), [], "an interface not up yet is the bind's to say")
        // A v4 wildcard and a v6 address share a port number, not a port.
        XCTAssertEqual(
            problems("[endpoints]\nxpub = [\"tcp://0.0.0.0:5556\"]\npull = [\"tcp://[::1]:5556\"]\n").map(\.message), []
        )
    }

    /// A `max_upstream_prefixes` set in the file must fit in the broker's subscription table
    /// (twice it plus 64) while the gateway is on, reported at its line with what fits; unset,
    /// the gateway takes what fits (so an older file with a small table still starts); a value
    /// out of its range is reported as such, and does not overflow the check.
    func testTheGatewaysPrefixesMustFitInMaxSubscriptions() throws {
        let small = problems(
            "[limits]\nmax_subscriptions = 1000\n[http]\nenabled = true\nmax_upstream_prefixes = 10000\n")
        XCTAssertEqual(small.map(\.line), [5])
        XCTAssertTrue(small.first?.message.contains("max_upstream_prefixes (10000)") == true, "\(small)")
        XCTAssertTrue(small.first?.message.contains("at most 468") == true, "it says what fits: \(small)")
        let large = problems("[http]\nenabled = true\nmax_upstream_prefixes = 60000\n")
        XCTAssertEqual(large.map(\.line), [3])
        XCTAssertTrue(large.first?.message.contains("at least 120064") == true, "\(large)")
        let tiny = problems("[limits]\nmax_subscriptions = 50\n[http]\nenabled = true\nmax_upstream_prefixes = 1\n")
        XCTAssertTrue(
            tiny.first?.message.contains("raise max_subscriptions in [limits] to at least 66") == true, "\(tiny)")
        let huge = problems("[http]\nenabled = true\nmax_upstream_prefixes = 5000000000000000000\n")
        XCTAssertEqual(huge.count, 1, "\(huge)")
        XCTAssertTrue(huge.first?.message.contains("1000000") == true, "its range: \(huge)")
        XCTAssertEqual(problems("[limits]\nmax_subscriptions = 1000\n[http]\nenabled = true\n"), [], "unset: what fits")
        XCTAssertEqual(
            problems("[limits]\nmax_subscriptions = 1000\n[http]\nmax_upstream_prefixes = 10000\n"), [], "gateway off")

        var settings = HTTPSettings()
        XCTAssertEqual(settings.upstreamPrefixLimit(maxSubscriptions: 100_000), 10_000)
        XCTAssertEqual(settings.upstreamPrefixLimit(maxSubscriptions: 1_000), 468)
        XCTAssertEqual(settings.upstreamPrefixLimit(maxSubscriptions: 10), 1)
        settings.maxUpstreamPrefixes = 50_000
        XCTAssertEqual(settings.upstreamPrefixLimit(maxSubscriptions: 200_000), 50_000)
        // A reload beside enabled = false is not checked, and the running gateway is held to
        // what fits.
        XCTAssertEqual(settings.upstreamPrefixLimit(maxSubscriptions: 5_000), 2_468)
    }

    /// Each [security.<role>] section has its own keys: a problem is reported at the line of
    /// the section that has it, not the last section to set a key of that name (it was).
    func testSecurityProblemsPointAtTheirOwnSection() {
        let found = problems(
            "[security.xpub]\nallowed_addresses = [\"10.20.0.0/33\"]\nallowed_keys = \"/etc/keys\"\n"
                + "[security.pull]\nallowed_addresses = []\nallowed_keys = \"/etc/other\"\ncurve = true\n"
                + "[security.control]\nallowed_addresses = []\n")
        XCTAssertEqual(found.map(\.line), [2, 3, 7], "\(found)")
        XCTAssertTrue(found.first?.message.contains("[security.xpub]") == true, "\(found)")
        XCTAssertTrue(found.dropFirst().first?.message.contains("needs curve = true") == true, "\(found)")
        XCTAssertTrue(found.last?.message.contains("no server_secret_key_file") == true, "\(found)")
    }

    /// A caller that changes the configuration before validating it (zpubd's flags) gets the
    /// lines of what the file set, and none for what it replaced.
    func testReadLeavesValidationToTheCaller() throws {
        let text = "[endpoints]\nxpub = [\"tcp://127.0.0.1\"]\n[limits]\nmax_topics = -3\n"
        let read = ConfigurationFile.read(text)
        var (configuration, keyLines) = (read.configuration, read.keyLines)
        XCTAssertEqual(read.problems, [], "only validation finds these")
        XCTAssertEqual(ConfigurationFile.validate(configuration, keyLines: keyLines).map(\.line), [2, 4])
        configuration.xpubEndpoints = ["tcp://127.0.0.1:5556"]
        keyLines["xpub"] = nil
        XCTAssertEqual(ConfigurationFile.validate(configuration, keyLines: keyLines).map(\.line), [4])
    }

    func testARepeatedUpstreamIsRefusedWithItsLine() {
        let found = problems("[endpoints]\nupstream = [\"tcp://10.0.0.1:5556\", \"tcp://10.0.0.1:5556\"]\n")
        XCTAssertEqual(found.map(\.line), [2])
        XCTAssertTrue(found.first?.message.contains("is given twice") == true, "\(found)")
        // Written two ways, one publisher all the same: each message arrived twice (an audit).
        let spelled = problems(
            "[endpoints]\nupstream = [\"tcp://127.0.0.1:48099\", \"tcp://localhost:48099\", \"tcp://127.0.0.1:48100\"]\n"
        )
        XCTAssertEqual(spelled.map(\.line), [2])
        XCTAssertTrue(
            spelled.first?.message.contains(
                "\"tcp://localhost:48099\" is given twice (as \"tcp://127.0.0.1:48099\" too)") == true, "\(spelled)")
    }

    /// Values libzmq or the kernel turn into a broker no one can use, refused at their line
    /// (each passed --check-config, an audit): a keepalive idle time past Linux's ceiling
    /// (every TCP connection then failed at accept, unlogged), a `max_message_size` below
    /// the handshake's own commands (every producer's handshake failed), an IPv6 address
    /// without brackets (libzmq took it for an interface's name).
    func testValuesThatWouldLeaveNoClientInAreRefused() {
        let keepalive = problems("[sockets]\ntcp_keepalive_idle_s = 32768\n")
        XCTAssertEqual(keepalive.map(\.line), [2])
        XCTAssertTrue(keepalive.first?.message.contains("between 0 and 32767") == true, "\(keepalive)")
        XCTAssertEqual(problems("[sockets]\ntcp_keepalive_idle_s = 32767\n").count, 0)
        let small = problems("[sockets]\nmax_message_size = 20\n")
        XCTAssertEqual(small.map(\.line), [2])
        XCTAssertTrue(small.first?.message.contains("handshake") == true, "\(small)")
        XCTAssertEqual(problems("[sockets]\nmax_message_size = 512\n").count, 0)
        XCTAssertEqual(problems("[sockets]\nmax_message_size = 1000\n").count, 0, "a value that worked still does")
        XCTAssertEqual(problems("[sockets]\nmax_message_size = 511\n").count, 1)
        let bare = problems("[endpoints]\nxpub = [\"tcp://::1:21356\"]\nupstream = [\"tcp://fe80::1%eth0:5556\"]\n")
        XCTAssertEqual(bare.map(\.line), [2, 3], "\(bare)")
        XCTAssertTrue(bare.map(\.message).joined().contains("write tcp://[::1]:21356"), "\(bare)")
        XCTAssertTrue(bare.map(\.message).joined().contains("write tcp://[fe80::1%eth0]:5556"), "\(bare)")
        // A connect's source before the host keeps its own colons.
        XCTAssertEqual(problems("[endpoints]\nupstream = [\"tcp://10.0.0.2:0;10.0.0.1:5556\"]\n").count, 0)
    }

    /// The gateway and the pair link bind ports too: one another endpoint holds failed at
    /// start ("Address already in use", or blamed on "another process"), after --check-config
    /// had passed the file (an audit).
    func testTheGatewayAndThePairLinkNeedPortsOfTheirOwn() {
        let http = problems(
            "[endpoints]\nxpub = [\"tcp://*:47356\"]\n[http]\nenabled = true\nlisten = \"127.0.0.1:47356\"\n")
        XCTAssertEqual(http.map(\.line), [5], "\(http)")
        XCTAssertTrue(
            http.first?.message.contains("takes the port of xpub endpoint \"tcp://*:47356\"") == true, "\(http)")
        let pair = problems(
            "[endpoints]\nxpub = [\"tcp://*:47456\"]\n[ha]\nrole = \"primary\"\nbind = \"tcp://127.0.0.1:47456\"\npeer = \"tcp://10.0.0.2:47456\"\n"
        )
        XCTAssertTrue(
            pair.map(\.message).contains { $0.contains("[ha] bind \"tcp://127.0.0.1:47456\" takes the port of xpub") },
            "\(pair)")
        XCTAssertEqual(
            problems("[http]\nenabled = true\nlisten = \"127.0.0.1:47357\"\n[endpoints]\nxpub = [\"tcp://*:47356\"]\n")
                .count, 0)
    }

    /// What TOML refuses is refused here too, and what it reads is read (an audit): a
    /// section written twice, underscores not between digits, hexadecimal, octal and binary
    /// integers; a dotted key is pointed at its section.
    func testTOMLsOwnRulesForSectionsAndIntegers() throws {
        let twice = problems("[limits]\nmax_topics = 5\n[daemon]\n[limits]\nmax_subscriptions = 6\n")
        XCTAssertEqual(twice.map(\.line), [4])
        XCTAssertTrue(twice.first?.message.contains("[limits] appears twice (first on line 1)") == true, "\(twice)")
        let underscores = problems("[limits]\nmax_topics = 1__0_\n")
        XCTAssertEqual(underscores.map(\.line), [2])
        for bad in ["_1", "__5", "_-1"] { XCTAssertEqual(problems("[limits]\nmax_topics = \(bad)\n").count, 1, bad) }
        XCTAssertTrue(underscores.first?.message.contains("between two digits") == true, "\(underscores)")
        let read = try ConfigurationFile.parse(
            "[limits]\nmax_control_request = 0x100\nmax_topics = 0o17\nmax_subscriptions = 0b1_0000\nmax_subscription_length = 1_024\n"
        ).get()
        XCTAssertEqual(
            [read.maxControlRequest, read.maxTopics, read.maxSubscriptions, read.maxSubscriptionLength],
            [256, 15, 16, 1024])
        for bad in ["0x1g", "0x-1", "0x+10", "0b_1", "0x"] {
            XCTAssertTrue(
                problems("[limits]\nmax_topics = \(bad)\n").first?.message.contains("not a whole number in base")
                    == true,
                bad)
        }
        XCTAssertTrue(
            problems("[limits]\nmax_topics = 0x8000000000000000\n").first?.message.contains("too large") == true)
        // A bare word with an underscore is no value, not a number with a misplaced underscore.
        XCTAssertTrue(
            problems("[daemon]\nlog_level = json_lines\n").first?.message.contains("is not a value") == true,
            "\(problems("[daemon]\nlog_level = json_lines\n"))")
        let dotted = problems("limits.max_topics = 5\n")
        XCTAssertTrue(dotted.first?.message.contains("write max_topics under [limits]") == true, "\(dotted)")
    }

    /// An upstream that leads back to this broker's own xpub would forward one message to
    /// itself forever at 100% CPU: refused at its line, saying which endpoint and why.
    func testAnUpstreamThatLoopsBackToThisBrokerIsRefused() {
        let reserved = problems("[endpoints]\nupstream = [\"inproc://zpubd/xpub\"]\n")
        XCTAssertEqual(reserved.map(\.line), [2], "\(reserved)")
        XCTAssertTrue(reserved.first?.message.contains("\"inproc://zpubd/xpub\" is under inproc://zpubd/") == true)
        XCTAssertTrue(reserved.first?.message.contains("a loop") == true, "\(reserved)")
        let ownXPub: [(xpub: String, upstream: String)] = [
            ("ipc:///tmp/x-xpub", "ipc:///tmp/x-xpub"),
            ("ipc:///tmp/x-xpub", "ipc:///tmp/./x-xpub"), ("ipc:///tmp/x-xpub", "ipc:///tmp//x-xpub"),
            ("ipc:///tmp/x-xpub", "ipc:///var/../tmp/x-xpub"),
            ("inproc://mine", "inproc://mine"),
            ("tcp://127.0.0.1:47556", "tcp://127.0.0.1:47556"),
            ("tcp://127.0.0.1:47556", "tcp://localhost:47556"),
            ("tcp://*:47556", "tcp://127.0.0.1:47556"),
            ("tcp://0.0.0.0:47556", "tcp://localhost:47556"),
            ("tcp://*:47556", "tcp://[::1]:47556"),
            ("tcp://*:47556", "tcp://[::ffff:127.0.0.1]:47556"),
            ("tcp://127.0.0.1:47556", "tcp://[::FFFF:127.0.0.1]:47556"),
        ]
        for (xpub, upstream) in ownXPub {
            let found = problems("[endpoints]\nxpub = [\"\(xpub)\"]\nupstream = [\"\(upstream)\"]\n")
            XCTAssertEqual(found.map(\.line), [3], "\(xpub) <- \(upstream): \(found)")
            XCTAssertTrue(
                found.first?.message.contains("\"\(upstream)\" is this broker's own xpub endpoint") == true, "\(found)")
            XCTAssertTrue(found.first?.message.contains("a loop") == true, "\(found)")
        }
        let elsewhere: [(xpub: String, upstream: String)] = [
            ("ipc:///tmp/x-xpub", "ipc:///tmp/other-xpub"),
            ("tcp://127.0.0.1:47556", "tcp://127.0.0.1:47557"),
            ("tcp://127.0.0.1:47556", "tcp://10.0.0.1:47556"),
            ("tcp://*:47556", "tcp://10.0.0.1:47556"),
            ("tcp://127.0.0.1:*", "tcp://127.0.0.1:47556"),
            // This broker's pull is not a publisher: no loop (and no handshake).
            ("tcp://127.0.0.1:5556", "tcp://127.0.0.1:5557"),
        ]
        for (xpub, upstream) in elsewhere {
            XCTAssertEqual(problems("[endpoints]\nxpub = [\"\(xpub)\"]\nupstream = [\"\(upstream)\"]\n"), [], upstream)
        }
    }

    func testAtLeastOneWayInAndOut() {
        XCTAssertTrue(
            problems("[endpoints]\nxpub = []\n").contains { $0.message.contains("subscribers would have nowhere") })
        XCTAssertTrue(problems("[endpoints]\npull = []\nxsub = []\n").contains { $0.message.contains("no way in") })
    }

    func testCatchUpStallMsIsReadAndOutOfRangeIsRefusedWithItsLine() throws {
        XCTAssertEqual(
            try ConfigurationFile.parse("[daemon]\ncatch_up_stall_ms = 3000\n").get().catchUpStallMilliseconds, 3_000)
        let found = problems("[daemon]\ncatch_up_stall_ms = 50\n")
        XCTAssertEqual(found.map(\.line), [2])
        XCTAssertTrue(found.first?.message.contains("catch_up_stall_ms = 50 is out of range") == true, "\(found)")
        XCTAssertTrue(problems("[daemon]\ncatch_up_stall_ms = 60001\n").first?.message.contains("out of range") == true)
    }

    /// What a user wrote for a number, said back as written and with what to write instead
    /// (a walkthrough: `abc` came back as "abc" with advice to quote it, which is refused too).
    func testAWordOrAFractionOrAQuotedNumberWhereANumberGoesSaysWhatToWrite() {
        XCTAssertEqual(
            problems("[daemon]\ncatch_up_stall_ms = abc\n").first?.message,
            #"abc is not a value: write a whole number, true or false, a "quoted string" or ["a", "list"]"#)
        XCTAssertEqual(
            problems("[daemon]\ncatch_up_stall_ms = 1.5\n").first?.message,
            "1.5 is not a whole number: numbers here are whole (milliseconds, bytes, counts)")
        XCTAssertEqual(
            problems("[daemon]\ncatch_up_stall_ms = \"1000\"\n").first?.message,
            "catch_up_stall_ms must be an integer, not a string: write it without quotes")
    }

    func testIOThreadsOutOfRangeIsRefusedWithItsLine() {
        let found = problems("[sockets]\nio_threads = 0\n")
        XCTAssertEqual(found.map(\.line), [2])
        XCTAssertTrue(found.first?.message.contains("io_threads") == true, "\(found)")
        XCTAssertTrue(problems("[sockets]\nio_threads = 65\n").first?.message.contains("out of range") == true)
        XCTAssertTrue(problems("[sockets]\nio_threads = 64\n").isEmpty)
    }

    func testHistoryBoundsAreRefusedWithTheirLineAndTheKeyAsWritten() {
        let text = "[last_value]\nmax_bytes = 100\n[history]\nprefixes = [\"a.\"]\nqueue_bytes = 10\nmax_bytes = 0\n"
        guard case .failure(let failure) = ConfigurationFile.parse(text) else { return XCTFail("must be refused") }
        let found = failure.problems
        XCTAssertEqual(found.map(\.line), [5, 6])
        XCTAssertTrue(found[0].message.hasPrefix("queue_bytes = 10 is out of range"), found[0].message)
        XCTAssertTrue(found[1].message.hasPrefix("max_bytes = 0 is out of range"), found[1].message)
    }
}

final class EndpointTests: XCTestCase {
    /// host:port alone is answered with the endpoint to write, when that is one.
    func testAnEndpointWithoutItsTransportGetsTheFixWhenThereIsOne() {
        XCTAssertEqual(
            Endpoint.problem(with: "127.0.0.1:5557"), "not an endpoint; write transport://address: tcp://127.0.0.1:5557"
        )
        XCTAssertEqual(
            Endpoint.problem(with: "[::1]:5557"), "not an endpoint; write transport://address: tcp://[::1]:5557")
        for endpoint in ["tcp:127.0.0.1:5555", "::1:5555", "127.0.0.1:99999", "a/b:5"] {
            let problem = Endpoint.problem(with: endpoint) ?? ""
            XCTAssertTrue(problem.contains("e.g. tcp://127.0.0.1:PORT"), "\(endpoint): \(problem)")
        }
    }

    func testAcceptsWhatLibzmqBinds() {
        for endpoint in [
            "tcp://127.0.0.1:5556", "tcp://*:5556", "tcp://[::1]:5556", "tcp://eth0:0", "tcp://127.0.0.1:*",
            "ipc:///run/zpub/x.sock", "ipc://@abstract", "inproc://broker", "epgm://eth0;239.192.1.1:5555",
        ] {
            XCTAssertNil(Endpoint.problem(with: endpoint), endpoint)
        }
    }

    /// A Unix socket's path fits in sun_path (107 bytes and its NUL); a longer one passed
    /// --check-config and failed only at bind.
    func testAnIPCPathLongerThanTheKernelTakesIsRefused() {
        let longest = "/tmp/" + String(repeating: "x", count: Endpoint.maxIPCPathBytes - 5)
        XCTAssertNil(Endpoint.problem(with: "ipc://" + longest))
        let problem = Endpoint.problem(with: "ipc://" + longest + "y")
        XCTAssertTrue(
            problem?.contains("108 bytes; the kernel takes at most 107 (sun_path)") == true, "\(problem ?? "")")
        XCTAssertNotNil(Endpoint.problem(with: "ipc://@" + String(repeating: "a", count: 107)))
    }

    func testRejectsWithAHint() {
        XCTAssertNotNil(Endpoint.problem(with: "127.0.0.1:5556")?.range(of: "transport://address"))
        XCTAssertNotNil(Endpoint.problem(with: "tcp://127.0.0.1:99999")?.range(of: "0 to 65535"))
        XCTAssertNotNil(Endpoint.problem(with: "tcp://:5556")?.range(of: "needs a host"))
        XCTAssertNotNil(Endpoint.problem(with: "ipc://")?.range(of: "empty"))
        XCTAssertNotNil(Endpoint.problem(with: "pgm://eth0")?.range(of: "interface;multicast"))
    }
}
