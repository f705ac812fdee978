import NIOCore
import NIOPosix
import XCTest

@testable import ZPubGateway

/// `LoopTurns` on a real event loop whose turns it counts, as the gateway runs it.
final class LoopTurnsTests: XCTestCase {
    /// What the resumptions saw; touched on the loop's thread only, read once they are done.
    private final class Runs: @unchecked Sendable {
        var seen: [(index: Int, turn: UInt64)] = []
    }

    /// 200 connections that wait at once are resumed over many turns, at most `perFiring` in
    /// one, each in a later turn than the one it began waiting in, in the order they began. Each
    /// resumption takes 20 µs, so that a firing outlasts the timer's 50 µs and the timer falls
    /// due again within the same turn: the ones left over must still wait for the next.
    func testAFiringResumesAtMostItsShareAndEachWaiterInALaterTurn() throws {
        let turns = LoopTurns()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1, metricsDelegate: turns)
        defer { try? group.syncShutdownGracefully() }
        let loop = group.next()
        let runs = Runs()
        let count = 200
        let done = loop.makePromise(of: Void.self)
        let begun = try loop.submit {
            for index in 0..<count {
                turns.afterThisTurn(on: loop) {
                    runs.seen.append((index, turns.current))
                    let until = NIODeadline.now() + .microseconds(20)
                    while NIODeadline.now() < until {}
                    if runs.seen.count == count { done.succeed(()) }
                }
            }
            return turns.current
        }.wait()
        try done.futureResult.wait()
        XCTAssertEqual(runs.seen.map(\.index), Array(0..<count), "in the order they began waiting")
        XCTAssertFalse(runs.seen.contains { $0.turn == begun }, "none in the turn it began waiting in")
        let perTurn = Dictionary(grouping: runs.seen, by: \.turn).mapValues(\.count)
        XCTAssertLessThanOrEqual(perTurn.values.max() ?? 0, LoopTurns.perFiring, "\(perTurn)")
        XCTAssertGreaterThanOrEqual(perTurn.count, count / LoopTurns.perFiring, "\(perTurn)")
    }

    /// A connection that begins waiting while others are resumed waits for a turn after its own.
    func testAWaiterQueuedByAResumptionRunsInALaterTurn() throws {
        let turns = LoopTurns()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1, metricsDelegate: turns)
        defer { try? group.syncShutdownGracefully() }
        let loop = group.next()
        let done = loop.makePromise(of: (UInt64, UInt64).self)
        loop.execute {
            turns.afterThisTurn(on: loop) {
                let queuedIn = turns.current
                turns.afterThisTurn(on: loop) { done.succeed((queuedIn, turns.current)) }
            }
        }
        let (queuedIn, ranIn) = try done.futureResult.wait()
        XCTAssertNotEqual(queuedIn, ranIn)
    }
}
