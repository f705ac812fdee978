import Foundation
import XCTest
import ZeroMQ

/// The forwarding loop allocates nothing per message in the steady state.
///
/// zpubd runs with libMallocCounter.so preloaded (Sources/CMallocCounter), which counts every
/// malloc, calloc, realloc and aligned allocation in the process and writes the total to a file
/// when it exits. Two runs forward different numbers of messages; whatever both runs share
/// (start-up, connections, the control requests the harness makes, shutdown) cancels out in the
/// difference, which leaves the allocations per additional message. Frames are at most 33 bytes,
/// so libzmq keeps them inside the zmq_msg_t and does not allocate for them either.
///
/// This is not a timing test: it counts calls, and passes on a slow or busy machine alike.
final class AllocationTests: XCTestCase {
    static let baseline = 10_000
    static let extra = 200_000

    func testForwardingAllocatesNothingPerMessage() throws {
        try checkNoAllocationPerMessage(configuration: "[sockets]\nsend_hwm = 0\n")
    }

    /// With the last-value cache on and every message on one cached topic: each message
    /// replaces the topic's value, in the entry's own buffer.
    func testCachingLastValuesAllocatesNothingPerUpdate() throws {
        try checkNoAllocationPerMessage(
            configuration: "[sockets]\nsend_hwm = 0\n[last_value]\nprefixes = [\"t.\"]\n")
    }

    /// With 5,000 topics in turn (and `max_topics` 5,000: the topic cache grows to 16,384 sets),
    /// each message's topic is found through the topic cache or, for a few percent (the sets
    /// that three or more share), through the table's seeded hash, and its counters are written:
    /// once every topic is known, nothing allocates on either path. Both runs send every topic,
    /// so the table's growth cancels out. The bound is tighter than the others': an allocation
    /// on the seeded path alone comes to some 0.04 per message, on top of the 0.007-0.013 that
    /// every run here counts, with one topic or 5,000 (docs/performance.md, "The allocation test").
    func testManyTopicsInTurnAllocateNothingOnceKnown() throws {
        try checkNoAllocationPerMessage(
            configuration: "[sockets]\nsend_hwm = 0\n[limits]\nmax_topics = 5000\n", topics: 5_000, bound: 0.03)
    }

    private func checkNoAllocationPerMessage(configuration: String, topics: Int = 1, bound: Double = 0.05) throws {
        let library = Binaries.directory.appendingPathComponent("libMallocCounter.so")
        guard FileManager.default.fileExists(atPath: library.path) else {
            XCTFail("\(library.path) is missing: build it with `swift build` (make test does) before `swift test`")
            return
        }
        let few = try allocations(
            forwarding: Self.baseline, library: library, configuration: configuration, topics: topics)
        let many = try allocations(
            forwarding: Self.baseline + Self.extra, library: library, configuration: configuration, topics: topics)
        let perMessage = Double(many - few) / Double(Self.extra)
        XCTAssertLessThan(
            perMessage, bound,
            "zpubd made \(many - few) more allocations for \(Self.extra) more messages (\(few) for \(Self.baseline), \(many) for \(Self.baseline + Self.extra)): the forwarding path allocates per message"
        )
    }

    /// Runs zpubd under the malloc counter, forwards `count` messages on `topics` topics in
    /// turn from a PUSH producer to one subscriber, stops zpubd with SIGTERM and returns the
    /// number of allocations it made.
    private func allocations(forwarding count: Int, library: URL, configuration: String, topics: Int) throws -> Int {
        let countFile = FileManager.default.temporaryDirectory.appendingPathComponent(
            "zpub-malloc-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: countFile) }
        // Unlimited queues towards the subscriber, so that every message arrives and the test
        // knows when forwarding is over without asking the broker (each request allocates).
        let daemon = try Daemon(
            configuration: configuration,
            environment: ["LD_PRELOAD": library.path, "ZPUB_MALLOC_COUNT_FILE": countFile.path])
        let clients = try Clients()
        let subscriber = try clients.subscriber(daemon.xpub, prefixes: ["t"], receiveHWM: 0)
        try daemon.waitForSubscriptions(1)
        let producer = try clients.socket(.push, connect: daemon.pull)

        let topic = Message()
        let payload = Message()
        let received = Message()
        // Built before sending, so that the test's own allocations stay out of the loop.
        let topicNames = topics == 1 ? [Array("t.small".utf8)] : (0..<topics).map { Array("t.\($0)".utf8) }
        var arrived = 0
        for index in 0..<count {
            topic.replace(with: topicNames[index % topicNames.count])
            payload.replace(with: withUnsafeBytes(of: UInt64(index)) { Array($0) })
            XCTAssertTrue(try producer.send(topic, more: true))
            XCTAssertTrue(try producer.send(payload))
            // Receive as we go, so the queues stay short.
            while try subscriber.receive(into: received, dontWait: true) {
                if !received.hasMore { arrived += 1 }
            }
        }
        while arrived < count {
            guard try Poller.waitReadable(subscriber, timeoutMilliseconds: 10_000) else {
                XCTFail("only \(arrived) of \(count) messages arrived")
                break
            }
            while try subscriber.receive(into: received, dontWait: true) {
                if !received.hasMore { arrived += 1 }
            }
        }

        daemon.signal(SIGTERM)
        XCTAssertEqual(daemon.waitForExit(timeout: 20), 0, "zpubd did not stop cleanly; its log:\n\(daemon.log)")
        let text = try String(contentsOf: countFile, encoding: .utf8)
        return try XCTUnwrap(Int(text), "the malloc counter wrote \(text.debugDescription)")
    }
}
