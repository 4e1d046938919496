import VLMTensor

/// A seeded few-shot split of a labelled pool: K training shots and V validation images per class,
/// disjoint; everything else is left over (e.g. for a test set).
///
/// Determinism: for each class in order, the indices of its images (ascending) are shuffled with
/// Fisher–Yates driven by `SplitMix64(seed: seed &+ class)`; the first K become training shots,
/// the next V validation. Each class has its own stream, so adding images of one class never changes
/// another class's draw. Output index lists are sorted ascending.
public struct FewShotSplit: Sendable, Equatable {
    public let train: [Int]
    public let validation: [Int]
    public let unused: [Int]

    public init(labels: [Int], classNames: [String], shots: Int, validationPerClass: Int, seed: UInt64) throws {
        guard !classNames.isEmpty else { throw PromptLearningError.invalidInput("no class names") }
        guard shots > 0 else { throw PromptLearningError.invalidConfiguration("shots must be positive, got \(shots)") }
        guard validationPerClass >= 0 else {
            throw PromptLearningError.invalidConfiguration("validation images per class must be ≥ 0, got \(validationPerClass)")
        }
        if let bad = labels.firstIndex(where: { $0 < 0 || $0 >= classNames.count }) {
            throw PromptLearningError.invalidInput("label \(labels[bad]) at index \(bad) is outside 0..<\(classNames.count) (the class names)")
        }
        var byClass = [[Int]](repeating: [], count: classNames.count)
        for (index, label) in labels.enumerated() { byClass[label].append(index) }
        let needed = shots + validationPerClass
        for (c, members) in byClass.enumerated() where members.count < needed {
            throw PromptLearningError.notEnoughExamples(
                "class \(c) '\(classNames[c])' has \(members.count) images, \(shots) shots + \(validationPerClass) validation requested")
        }
        var train: [Int] = [], validation: [Int] = [], unused: [Int] = []
        for (c, members) in byClass.enumerated() {
            var shuffled = members
            var rng = SplitMix64(seed: seed &+ UInt64(c))
            for i in stride(from: shuffled.count - 1, to: 0, by: -1) {
                shuffled.swapAt(i, rng.nextIndex(below: i + 1))
            }
            train += shuffled[0..<shots]
            validation += shuffled[shots..<needed]
            unused += shuffled[needed...]
        }
        self.train = train.sorted()
        self.validation = validation.sorted()
        self.unused = unused.sorted()
    }
}
