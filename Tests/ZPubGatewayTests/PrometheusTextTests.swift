import XCTest
import ZPubCore

@testable import ZPubGateway

final class PrometheusTextTests: XCTestCase {
    private let gateway = GatewayCounters().snapshot

    func testWithoutTheBrokerOnlyUpAndTheGatewayAreReported() {
        let text = PrometheusText.render(stats: nil, gateway: gateway)
        XCTAssertTrue(text.hasPrefix("# HELP zpub_up "))
        XCTAssertTrue(text.contains("\nzpub_up 0\n"))
        XCTAssertTrue(text.contains("zpub_http_clients{kind=\"websocket\"} 0\n"))
        XCTAssertFalse(text.contains("zpub_subscriptions "))
    }

    func testEveryFamilyHasHelpAndTypeAndEverySampleIsWellFormed() throws {
        let json = #"""
            {"bytes_in":10,"bytes_out":10,"forwarding":"running","handshake_failures":0,"dropped_log_records":4,"connection_events_summarized":7,"control_replies_dropped":5,
             "last_value":{"bytes":5,"deletions":0,"enabled":true,"entries":1,"evictions":0,"hits":2,"max_bytes":9,
               "max_entries":9,"misses":0,"on_subscribe":true,"prefixes":["s."],"snapshots":0,"updates":1},
             "messages_in":1,"messages_out":1,"peers":{"pull":1,"xpub":2,"xsub":0},"send_failures":0,
             "sockets":{"pull":{"bytes_in":10,"bytes_out":0,"messages_in":1,"messages_out":0}},
             "subscriptions":{"limit":5,"prefixes":1,"refused_table_full":0,"refused_too_long":0,"subscribe_events":2,
               "total":2,"unsubscribe_events":0},
             "topics":{"accounting":true,"limit":5,"tracked":1,"untracked_bytes":0,"untracked_messages":0},
             "unwanted_messages":0,"upstreams":[{"endpoint":"tcp://a\"b:1","state":"connected","connects":1,"disconnects":0}],
             "uptime_s":1.5,"descriptors":{"accept_paused":true,"accept_pauses":3},
             "catch_up":{"cause":"RESUME","forwarded":3,"elapsed_ms":40,"waiting_ms":12},
             "security":{"curve":[],"allowed":0,"denied":0,"denied_by_socket":{}},
             "history":{"prefixes":["o."],"persistent":true,"directory":"/var/lib/zpub","messages":3,"bytes":30,
               "first_seq":5,"last_seq":9,"per_prefix":{"o.":{"messages":3,"bytes":30}},"written":9,"commits":2,"queued_bytes":0,
               "dropped":1,"write_failures":0,"evictions":4,"disk_bytes":4096,"last_sync_ms":1000},
             "pair":{"role":"backup","state":"passive","peer":"tcp://p:1","active":false,"changes":1,"replicated_through":3,
               "peer_sequence":3,"lag_messages":0,"lag_ms":0,"took_over_at":0,
               "problems":[{"kind":"one_way_link","message":"m"}]}}
            """#
        let stats = try JSONDecoder().decode(StatsSnapshot.self, from: Data(json.utf8))
        // STATS of a zpubd from before history.commits still reads.
        let older = try JSONDecoder().decode(
            StatsSnapshot.self, from: Data(json.replacingOccurrences(of: #""commits":2,"#, with: "").utf8))
        XCTAssertNil(older.history?.commits)
        let text = PrometheusText.render(stats: stats, gateway: gateway)
        XCTAssertTrue(text.contains("zpub_socket_messages_total{direction=\"in\",socket=\"pull\"} 1\n"))
        XCTAssertTrue(text.contains("zpub_uptime_seconds 1.5\n"))
        XCTAssertEqual(stats.catchUp?.waitingMilliseconds, 12)
        XCTAssertTrue(text.contains("\nzpub_catching_up 1\n"))
        XCTAssertTrue(text.contains("\nzpub_dropped_log_records_total 4\n"))
        XCTAssertTrue(text.contains("\nzpub_control_replies_dropped_total 5\n"))
        XCTAssertTrue(text.contains("\nzpub_connection_events_summarized_total 7\n"))
        XCTAssertTrue(text.contains("zpub_upstream_connected{endpoint=\"tcp://a\\\"b:1\"} 1\n"), "label escaping")
        XCTAssertTrue(text.contains("zpub_last_value_events_total{event=\"hit\"} 2\n"))
        XCTAssertTrue(text.contains("\nzpub_accept_paused 1\n"))
        XCTAssertTrue(text.contains("\nzpub_accept_pauses_total 3\n"))
        XCTAssertTrue(text.contains("zpub_history_messages{prefix=\"o.\"} 3\n"))
        XCTAssertTrue(text.contains("zpub_history_not_kept_total{reason=\"queue_full\"} 1\n"))
        XCTAssertTrue(text.contains("zpub_history_sequence{end=\"last\"} 9\n"))
        XCTAssertTrue(text.contains("\nzpub_history_commits_total 2\n"))
        XCTAssertTrue(text.contains("zpub_pair_problem{kind=\"one_way_link\"} 1\n"))
        XCTAssertTrue(text.contains("zpub_pair_problem{kind=\"peer_silent\"} 0\n"), "every kind has a series")
        var declared: Set<String> = []
        for line in text.split(separator: "\n") {
            if line.hasPrefix("# TYPE ") {
                let parts = line.split(separator: " ")
                XCTAssertTrue(["counter", "gauge"].contains(parts[3]))
                if parts[3] == "counter" { XCTAssertTrue(parts[2].hasSuffix("_total"), "\(line)") }
                declared.insert(String(parts[2]))
            } else if !line.hasPrefix("#") {
                let name = line.prefix { $0 != "{" && $0 != " " }
                XCTAssertTrue(declared.contains(String(name)), "sample before its TYPE: \(line)")
                XCTAssertNotNil(Double(line.split(separator: " ").last ?? ""), "\(line)")
            }
        }
    }
}
