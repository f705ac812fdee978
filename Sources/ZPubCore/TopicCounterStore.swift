/// The traffic counters of the topic table's topics, one per table index, in a buffer the
/// forwarding loop writes in place.
///
/// Held by `TopicTable`, which gives it value semantics by copying on write: but where a Swift
/// array checks that its storage is not shared on every write (a call, and some 40
/// instructions a message with the run tallies this replaced; callgrind), the table checks once
/// per burst of messages (`TopicTable.prepareToCount`) and the burst's counts are plain stores.
/// Nothing copies the table in the middle of a burst: the forwarding loop's thread is the only
/// writer, and the copies it hands to readers (TOPICS) are taken between bursts.
@usableFromInline
final class TopicCounterStore: @unchecked Sendable {
    // @unchecked: shared between threads only while no one writes it (see above).
    // `@exclusivity(unchecked)`: read for every message, and a class's stored property is
    // otherwise checked for overlapping access at run time (`swift_beginAccess`: callgrind
    // counted ~60 instructions a read). Only the forwarding loop's thread writes them.
    @exclusivity(unchecked) @usableFromInline private(set) var base: UnsafeMutablePointer<TopicTable.Counters>
    @exclusivity(unchecked) @usableFromInline private(set) var count = 0
    private var capacity: Int

    init(capacity: Int = 16) {
        self.capacity = max(capacity, 1)
        base = .allocate(capacity: self.capacity)
    }

    deinit {
        base.deinitialize(count: count)
        base.deallocate()
    }

    /// Adds zeroed counters for a new topic, at index `count`.
    func append() {
        if count == capacity {
            let grown = UnsafeMutablePointer<TopicTable.Counters>.allocate(capacity: capacity * 2)
            grown.moveInitialize(from: base, count: count)
            base.deallocate()
            base = grown
            capacity *= 2
        }
        (base + count).initialize(to: TopicTable.Counters())
        count += 1
    }

    subscript(index: Int) -> TopicTable.Counters {
        precondition(index >= 0 && index < count, "topic counters index out of range")
        return base[index]
    }

    func copy() -> TopicCounterStore {
        let copy = TopicCounterStore(capacity: capacity)
        copy.base.initialize(from: base, count: count)
        copy.count = count
        return copy
    }
}
