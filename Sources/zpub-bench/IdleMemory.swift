/// Resident memory of a forwarder that has just started and carries no traffic.
enum IdleMemory {
    static func measure(programs: Programs) -> String {
        var lines = [
            "| forwarder | idle RSS MiB | anonymous (heap, stacks) | file-backed (code, libraries) |",
            "|---|---:|---:|---:|",
        ]
        let mebibytes = { (kib: Int?) in kib.map { Report.number(Double($0) / 1024) } ?? "-" }
        for forwarder in [Forwarder.proxy, .loop, .zpubd(accounting: true)] {
            guard let broker = try? BrokerProcess(forwarder, ingest: .pub, programs: programs) else { continue }
            // Let the process finish starting (threads, first poll) before reading its RSS.
            Time.sleep(milliseconds: 300)
            let row =
                "| \(forwarder) | \(mebibytes(broker.currentRSSKiB)) | \(mebibytes(broker.anonymousRSSKiB)) | \(mebibytes(broker.fileRSSKiB)) |"
            broker.stop()
            lines.append(row)
        }
        return lines.joined(separator: "\n")
    }
}
