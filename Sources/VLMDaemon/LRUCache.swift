import Foundation
import VLMWire

/// A thread-safe least-recently-used cache bounded by the summed cost (bytes) of its values.
/// Used for image embeddings (keyed by pixel digest + model + preprocessing) and text embeddings
/// (keyed by model + prompt).
final class LRUCache<Key: Hashable & Sendable, Value: Sendable>: Sendable {
    let name: String
    let budgetBytes: Int
    private let state: Mutex<State>

    private struct Entry {
        var value: Value
        var cost: Int
        var lastUse: UInt64
    }

    private struct State {
        var entries: [Key: Entry] = [:]
        var bytes = 0
        var clock: UInt64 = 0
        var hits = 0, misses = 0, evictions = 0
    }

    init(name: String, budgetBytes: Int) {
        self.name = name
        self.budgetBytes = budgetBytes
        state = Mutex(State())
    }

    func value(for key: Key) -> Value? {
        state.withLock { s in
            guard var entry = s.entries[key] else { s.misses += 1; return nil }
            s.clock += 1
            entry.lastUse = s.clock
            s.entries[key] = entry
            s.hits += 1
            return entry.value
        }
    }

    /// Inserts (or replaces) a value, then evicts least-recently-used entries until within budget.
    /// A value larger than the whole budget is not cached.
    func insert(_ value: Value, for key: Key, cost: Int) {
        guard cost <= budgetBytes else { return }
        state.withLock { s in
            s.clock += 1
            if let old = s.entries[key] { s.bytes -= old.cost }
            s.entries[key] = Entry(value: value, cost: cost, lastUse: s.clock)
            s.bytes += cost
            if s.bytes > budgetBytes {
                // Evict oldest first; sorting is fine at eviction time (rare next to lookups).
                for (oldKey, entry) in s.entries.sorted(by: { $0.value.lastUse < $1.value.lastUse }) {
                    guard s.bytes > budgetBytes else { break }
                    if oldKey == key { continue }
                    s.entries[oldKey] = nil
                    s.bytes -= entry.cost
                    s.evictions += 1
                }
            }
        }
    }

    func removeAll(where shouldRemove: (Key) -> Bool) {
        state.withLock { s in
            for key in s.entries.keys where shouldRemove(key) {
                s.bytes -= s.entries[key]!.cost
                s.entries[key] = nil
            }
        }
    }

    var status: CacheStatus {
        state.withLock { s in
            CacheStatus(name: name, entries: s.entries.count, bytes: s.bytes, budgetBytes: budgetBytes,
                        hits: s.hits, misses: s.misses, evictions: s.evictions)
        }
    }
}
