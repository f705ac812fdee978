/// The persisted last values' topics, sizes and order of update, in memory, so that the store
/// keeps the same entries as the cache: the cache evicts its oldest update while it holds more
/// than `max_entries` or more than `max_bytes`, after each update, and the store, told of the
/// same updates in the same order, evicts the same ones. Trimmed by count at the end of a
/// batch instead, it kept rows the cache had dropped (2,000 rows of 900 bytes under a
/// `max_bytes` of 1,000) and could bring back, at the next start, a value evicted before a
/// deletion in the same batch.
///
/// A topic's size is its encoded frames' (`FrameCodec`: each frame with its 4-byte length), as
/// the cache counts an entry. The order is a queue of (sequence, topic), by sequence as the
/// cache's, with stale entries left in it until they come to the front: each update appends
/// one (or inserts it in place, for a pair peer's older numbers), and the queue is compacted
/// once it holds more than about twice the topics.
struct LastValueSizes {
    private var entries: [[UInt8]: (sequence: UInt64, bytes: Int)] = [:]
    private var order: [(sequence: UInt64, topic: [UInt8])] = []
    private var head = 0
    private(set) var totalBytes = 0

    var count: Int { entries.count }

    mutating func update(_ topic: [UInt8], sequence: UInt64, bytes: Int) {
        if let old = entries.updateValue((sequence, bytes), forKey: topic) { totalBytes -= old.bytes }
        totalBytes += bytes
        if let last = order.last, sequence < last.sequence {
            // Older than the newest: a pair peer's values, restored with its numbers. The
            // cache orders its entries by sequence, and so does this.
            var low = head
            var high = order.count
            while low < high {
                let middle = (low + high) / 2
                if order[middle].sequence <= sequence { low = middle + 1 } else { high = middle }
            }
            order.insert((sequence, topic), at: low)
        } else {
            order.append((sequence, topic))
        }
        compactIfSparse()
    }

    mutating func remove(_ topic: [UInt8]) {
        guard let old = entries.removeValue(forKey: topic) else { return }
        totalBytes -= old.bytes
    }

    /// Removes and returns the topic updated longest ago; nil when there is none.
    mutating func removeOldest() -> [UInt8]? {
        while head < order.count {
            let (sequence, topic) = order[head]
            head += 1
            // Stale: the topic was updated again since, or removed.
            guard entries[topic]?.sequence == sequence else { continue }
            remove(topic)
            return topic
        }
        return nil
    }

    /// Keeps the queue within about twice the topics: stale entries after `head` (topics
    /// updated again) and the ones before it (taken) are dropped.
    private mutating func compactIfSparse() {
        guard order.count > 2 * entries.count + 64 else { return }
        order = order[head...].filter { entries[$0.topic]?.sequence == $0.sequence }
        head = 0
    }
}
