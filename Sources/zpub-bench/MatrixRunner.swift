import Foundation

/// Runs every workload against every forwarder, repeatedly, alternating the order.
enum MatrixRunner {
    typealias Results = [Workload: [Variant: Summary]]

    /// Runs the matrix; a run that fails is reported on stderr and left out of the results.
    /// Returns the results and the number of failed runs.
    static func run(_ matrix: Matrix, programs: Programs) -> (results: Results, failures: Int) {
        var results: Results = [:]
        var failures = 0
        let total = matrix.repetitions * matrix.workloads.reduce(0) { $0 + matrix.variants(for: $1).count }
        var done = 0
        let started = Time.now()
        for repetition in 0..<matrix.repetitions {
            for workload in matrix.workloads {
                // Alternate: each repetition starts with a different forwarder and runs them in
                // the opposite direction, so none always runs first (or last) on a noisy machine.
                var variants = matrix.variants(for: workload)
                let shift = repetition % variants.count
                variants = Array(variants[shift...] + variants[..<shift])
                if repetition % 2 == 1 { variants.reverse() }
                for variant in variants {
                    done += 1
                    do {
                        let result = try runOnce(workload, variant, matrix: matrix, programs: programs)
                        results[workload, default: [:]][variant, default: Summary()].runs.append(result)
                        progress(
                            "[\(done)/\(total) \(Int(Time.seconds(Time.now() - started)))s] \(workload) \(variant.forwarder) topics=\(variant.topics): \(Report.number(result.messagesPerSecond)) msg/s, \(result.brokerNanosecondsPerDelivery.map { Report.number($0) + " ns CPU/delivery, " } ?? "")p99 \(Report.number(result.p99)) µs, lost \(result.lost)"
                        )
                    } catch {
                        failures += 1
                        progress(
                            "[\(done)/\(total)] \(workload) \(variant.forwarder) topics=\(variant.topics) FAILED: \(error)"
                        )
                    }
                }
            }
        }
        return (results, failures)
    }

    /// One run: a fresh forwarder process, fresh clients; the throughput measurement first, then
    /// the latency measurement (at a fixed rate) over the same, now warm, connections: the first
    /// messages through a new connection pay for allocating queues, which is not forwarding.
    static func runOnce(_ workload: Workload, _ variant: Variant, matrix: Matrix, programs: Programs) throws
        -> RunResult
    {
        let broker =
            variant.forwarder == .direct
            ? nil : try BrokerProcess(variant.forwarder, ingest: workload.ingest, programs: programs)
        defer { broker?.stop() }
        do {
            let session = try ClientSession(
                workload: workload, topicCount: variant.topics, endpoints: broker?.endpoints)
            let throughput = try session.throughput(
                count: matrix.throughputCount(workload), brokerCPU: broker.map { broker in { broker.cpuNanoseconds } })
            // The forwarder's own CPU per delivered message over the throughput phase: what it
            // costs, whatever the clients' pace (docs/performance.md).
            var cpuPerDelivery: Double?
            if let cpu = throughput.brokerCPUNanoseconds, throughput.received > 0 {
                cpuPerDelivery = Double(cpu) / Double(throughput.received)
            }
            let rate = matrix.latencyRate(workload)
            let latency = try session.latency(count: max(20, Int(Double(rate) * matrix.latencySeconds)), rate: rate)
            var result = RunResult(
                workload: workload, throughput: throughput, latency: latency, peakRSSKiB: broker?.peakRSSKiB)
            result.brokerNanosecondsPerDelivery = cpuPerDelivery
            return result
        } catch let error where broker != nil {
            // What the forwarder said is the first thing to look at when a run fails.
            let running = broker?.process.isRunning == true ? "still running" : "exited"
            throw BenchError("\(error) (\(variant.forwarder) \(running); its log:\n\(broker?.logText ?? "")")
        }
    }

    static func progress(_ line: String) {
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }
}
