/// Zero-shot accuracy of a classifier over labelled images, accumulated batch by batch so a caller
/// can report it as it goes: top-1 and top-5 counts and the confusion matrix.
public struct ZeroShotEvaluation: Sendable {
    /// `confusion[true class][predicted class]`: image counts.
    public private(set) var confusion: [[Int]]
    public private(set) var count = 0
    public private(set) var correct = 0
    public private(set) var correctTop5 = 0

    public init(classCount: Int) {
        confusion = Array(repeating: Array(repeating: 0, count: classCount), count: classCount)
    }

    /// Counts one batch: `logits[image][class]` against each image's true class.
    public mutating func add(logits: [[Float]], labels: [Int]) {
        precondition(logits.count == labels.count, "one true label per row of logits")
        for (row, label) in zip(logits, labels) {
            let ranked = row.indices.sorted { row[$0] > row[$1] }
            confusion[label][ranked[0]] += 1
            if ranked[0] == label { correct += 1 }
            if ranked.prefix(5).contains(label) { correctTop5 += 1 }
        }
        count += labels.count
    }

    public var accuracy: Double { count == 0 ? 0 : Double(correct) / Double(count) }
    public var top5Accuracy: Double { count == 0 ? 0 : Double(correctTop5) / Double(count) }

    /// Per true class, the fraction classified correctly (0 for a class with no images).
    public var perClassAccuracy: [Double] {
        confusion.indices.map { c in
            let total = confusion[c].reduce(0, +)
            return total == 0 ? 0 : Double(confusion[c][c]) / Double(total)
        }
    }
}
