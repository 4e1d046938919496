// Where a reasoning step ends: a sentence end or a line break.

enum StepBoundary {
    /// Stop strings ending a step. Generation stops before them, so the punctuation is put back.
    static let stops = [". ", "! ", "? ", "\n"]

    enum Ending: Equatable {
        /// A sentence end: the punctuation that ended it.
        case sentence(Character)
        case line
        /// Anything else (a tag, end of generation, token limit).
        case other
    }

    /// Which stop ended a generation whose kept text is `kept` and whose sampled tokens decode to `raw`
    /// (which includes the stop string and whatever the token carried past it). Matches the end of the
    /// kept text followed by each stop; the earliest occurrence is the one generation stopped at.
    static func ending(kept: String, raw: String, otherStops: [String]) -> Ending {
        let tail = String(kept.suffix(16))
        var best: (position: String.Index, stop: String)? = nil
        for stop in stops + otherStops {
            guard let range = raw.range(of: tail + stop) else { continue }
            if best == nil || range.lowerBound < best!.position { best = (range.lowerBound, stop) }
        }
        guard let stop = best?.stop, stops.contains(stop) else { return .other }
        return stop == "\n" ? .line : .sentence(stop.first!)
    }
}
