import Foundation

/// Formats results as Markdown tables: readable in a terminal, pasteable into docs.
enum Report {
    /// Prints `report` and, when `output` is given, writes it there too (creating its folder).
    static func emit(_ report: String, to output: String?) throws {
        print(report)
        guard let output else { return }
        let url = URL(fileURLWithPath: output)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try report.write(to: url, atomically: true, encoding: .utf8)
    }

    /// One row per forwarder and topic count for each workload, with ratios to zmq_proxy.
    static func matrixTable(_ matrix: Matrix, _ results: [Workload: [Variant: Summary]]) -> String {
        var lines = [
            "| workload | forwarder | topics | msg/s median (min-max) | x proxy | broker CPU ns/delivery (min-max) | CPU x proxy | CPUs busy | MB/s | p50 µs | p99 µs (min-max) | p99 x proxy | p99.9 µs | max µs | sent | recv | lost | peak RSS MiB |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for workload in matrix.workloads {
            guard let byVariant = results[workload] else { continue }
            let proxy = byVariant.first { $0.key.forwarder == .proxy }?.value
            for variant in matrix.variants(for: workload) {
                guard let summary = byVariant[variant], !summary.runs.isEmpty else { continue }
                let throughput = summary.throughput
                let p99 = summary.p99
                let throughputRatio = proxy.map { ratio(throughput.median, $0.throughput.median) } ?? "-"
                let latencyRatio = proxy.map { ratio(p99.median, $0.p99.median) } ?? "-"
                let rate = rateText(throughput)
                let cpu = summary.cpu.map(rateText) ?? "-"
                var cpuRatio = "-"
                if let cpu = summary.cpu, let proxyCPU = proxy?.cpu { cpuRatio = ratio(cpu.median, proxyCPU.median) }
                let busy = summary.busyCPUs.map { String(format: "%.2f", $0.median) } ?? "-"
                lines.append(
                    "| \(workload) | \(variant.forwarder) | \(variant.topics) | \(rate) | \(throughputRatio) | \(cpu) | \(cpuRatio) | \(busy) | \(number(summary.megabytes.median)) | \(number(summary.p50.median)) | \(number(p99.median)) (\(number(p99.min))-\(number(p99.max))) | \(latencyRatio) | \(number(summary.p999.median)) | \(number(summary.max.median)) | \(summary.sent) | \(summary.received) | \(summary.lost) | \(summary.peakRSSMiB.map { number($0) } ?? "-") |"
                )
            }
        }
        return lines.joined(separator: "\n")
    }

    /// zpubd against zmq_proxy only: the short version, one line per workload.
    static func summaryTable(_ matrix: Matrix, _ results: [Workload: [Variant: Summary]]) -> String {
        var lines = [
            "| workload | zmq_proxy msg/s | zpubd acct off | zpubd acct on | zmq_proxy CPU ns/delivery | zpubd off CPU | zpubd on CPU | zmq_proxy p99 µs | zpubd off p99 | zpubd on p99 | CPUs busy: proxy / off / on | lost while measuring rates: proxy / off / on |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        let topics = matrix.topicCounts.last ?? 1
        for workload in matrix.workloads {
            guard let byVariant = results[workload],
                let proxy = byVariant.first(where: { $0.key.forwarder == .proxy })?.value
            else { continue }
            let off = byVariant[Variant(forwarder: .zpubd(accounting: false), topics: topics)]
            let on = byVariant[Variant(forwarder: .zpubd(accounting: true), topics: topics)]
            func cell(_ summary: Summary?, _ value: (Summary) -> Double, _ reference: Double) -> String {
                guard let summary else { return "-" }
                return "\(number(value(summary))) (\(ratio(value(summary), reference)))"
            }
            let proxyCPU = proxy.cpu?.median ?? 0
            func cpuCell(_ summary: Summary?) -> String {
                guard let cpu = summary?.cpu?.median else { return "-" }
                return "\(number(cpu)) (\(ratio(cpu, proxyCPU)))"
            }
            let busy = [proxy, off, on].map { $0?.busyCPUs.map { String(format: "%.2f", $0.median) } ?? "-" }
            let lost = [proxy, off, on].map { $0.map { "\($0.throughputLost)" } ?? "-" }
            lines.append(
                "| \(workload) | \(number(proxy.throughput.median)) | \(cell(off, \.throughput.median, proxy.throughput.median)) | \(cell(on, \.throughput.median, proxy.throughput.median)) | \(proxy.cpu.map { number($0.median) } ?? "-") | \(cpuCell(off)) | \(cpuCell(on)) | \(number(proxy.p99.median)) | \(cell(off, \.p99.median, proxy.p99.median)) | \(cell(on, \.p99.median, proxy.p99.median)) | \(busy.joined(separator: " / ")) | \(lost.joined(separator: " / ")) |"
            )
        }
        return lines.joined(separator: "\n")
    }

    static func rateText(_ spread: Spread) -> String {
        "\(number(spread.median)) (\(number(spread.min))-\(number(spread.max)))"
    }

    static func ratio(_ value: Double, _ reference: Double) -> String {
        reference > 0 ? String(format: "%.2fx", value / reference) : "-"
    }

    /// Three significant digits with k/M suffixes for large numbers.
    static func number(_ value: Double) -> String {
        switch abs(value) {
        case 1e6...: String(format: "%.2fM", value / 1e6)
        case 1e4...: String(format: "%.0fk", value / 1e3)
        case 1e3...: String(format: "%.2fk", value / 1e3)
        case 100...: String(format: "%.0f", value)
        case 10...: String(format: "%.1f", value)
        default: String(format: "%.2f", value)
        }
    }
}
