/// A set of 64-bit hashes in one flat array: open addressing with linear probing, up to 7/8
/// full, backward-shift deletion (no tombstones). What `SubscriberConnections` keeps per
/// connection: 8 bytes a member at most 16, where `Set<Int>`, which stays under 3/4 full,
/// takes up to 16 plus its bitmap; with 100,000 subscriptions that is 1 MiB against 2.
///
/// Members are hashes, spread already: the slot is the hash's low bits. Zero marks an empty
/// slot, so the member 0 is kept as 1 (two hashes then coincide, as any two may).
struct HashSet64: Sendable {
    private var slots: [Int] = []
    private(set) var count = 0

    init() {}

    var isEmpty: Bool { count == 0 }

    private static func stored(_ member: Int) -> Int { member == 0 ? 1 : member }

    func contains(_ member: Int) -> Bool {
        guard !slots.isEmpty else { return false }
        let value = Self.stored(member)
        let mask = slots.count - 1
        var slot = value & mask
        while slots[slot] != 0 {
            if slots[slot] == value { return true }
            slot = (slot + 1) & mask
        }
        return false
    }

    /// False when already a member.
    @discardableResult
    mutating func insert(_ member: Int) -> Bool {
        if (count + 1) * 8 > slots.count * 7 { grow() }
        let value = Self.stored(member)
        let mask = slots.count - 1
        var slot = value & mask
        while slots[slot] != 0 {
            if slots[slot] == value { return false }
            slot = (slot + 1) & mask
        }
        slots[slot] = value
        count += 1
        return true
    }

    /// False when not a member.
    @discardableResult
    mutating func remove(_ member: Int) -> Bool {
        guard !slots.isEmpty else { return false }
        let value = Self.stored(member)
        let mask = slots.count - 1
        var hole = value & mask
        while slots[hole] != value {
            if slots[hole] == 0 { return false }
            hole = (hole + 1) & mask
        }
        // Moves later members of the probe run into the hole unless their home slot lies
        // cyclically in (hole, next]: every member stays reachable from its home.
        var next = (hole + 1) & mask
        while slots[next] != 0 {
            let home = slots[next] & mask
            if (hole - home) & mask < (next - home) & mask {
                slots[hole] = slots[next]
                hole = next
            }
            next = (next + 1) & mask
        }
        slots[hole] = 0
        count -= 1
        return true
    }

    private mutating func grow() {
        let old = slots
        slots = Array(repeating: 0, count: max(4, old.count * 2))
        let mask = slots.count - 1
        for value in old where value != 0 {
            var slot = value & mask
            while slots[slot] != 0 { slot = (slot + 1) & mask }
            slots[slot] = value
        }
    }
}
