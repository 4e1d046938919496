import VLMCLIP

/// Where the learnable context sits in each class's prompt (CoOp's "end" class-token position):
///
///     [SOT] ctx_1 … ctx_M  <class-name tokens> .  [EOT]
///
/// One row per class; the context occupies positions 1...M of every row.
struct PromptLayout: Sendable {
    /// Token ids per class; the M context slots hold `placeholder` (never looked up).
    let tokens: [[Int32]]
    let contextLength: Int  // M
    /// Position of [EOT] in each row, where the text tower pools.
    let endPositions: [Int]
    /// Rows are computed up to here (max EOT + 1): the causal mask makes later positions irrelevant.
    var sequence: Int { (endPositions.max() ?? 0) + 1 }
    var classCount: Int { tokens.count }
    static let firstContextPosition = 1

    init(tokenizer: CLIPTokenizer, classNames: [String], contextLength: Int, maximumTokens: Int) throws {
        self.contextLength = contextLength
        var rows: [[Int32]] = []
        for (index, name) in classNames.enumerated() {
            let row = [tokenizer.startOfText] + [Int32](repeating: 0, count: contextLength)
                + tokenizer.encode(name + ".") + [tokenizer.endOfText]
            guard row.count <= maximumTokens else {
                throw PromptLearningError.invalidConfiguration(
                    "class \(index) '\(name)' needs \(row.count) tokens with \(contextLength) context vectors; the text tower holds \(maximumTokens)")
            }
            rows.append(row)
        }
        tokens = rows
        endPositions = rows.map { $0.count - 1 }
    }

    /// Input embeddings [classCount, sequence, width]: token embeddings, with the context vectors
    /// (`context.vectors(forClass:)`) in positions 1...M. Positions past a row's EOT are padding (id 0).
    func embeddings(context: ContextVectors, tokenEmbedding: [Float], width: Int) -> [Float] {
        let s = sequence
        var x = [Float](repeating: 0, count: classCount * s * width)
        for c in 0..<classCount {
            let ctxBase = context.offset(class: c)
            for p in 0..<s {
                let destination = (c * s + p) * width
                if p >= Self.firstContextPosition && p < Self.firstContextPosition + contextLength {
                    let source = ctxBase + (p - Self.firstContextPosition) * width
                    for d in 0..<width { x[destination + d] = context.values[source + d] }
                } else {
                    let id = p < tokens[c].count ? Int(tokens[c][p]) : 0
                    for d in 0..<width { x[destination + d] = tokenEmbedding[id * width + d] }
                }
            }
        }
        return x
    }

    /// Gradient w.r.t. the context vectors from the gradient w.r.t. the embeddings: shared context
    /// sums the contributions of every class row.
    func contextGradient(_ embeddingGradient: [Float], context: ContextVectors, width: Int) -> [Float] {
        let s = sequence
        var gradient = [Float](repeating: 0, count: context.values.count)
        for c in 0..<classCount {
            let ctxBase = context.offset(class: c)
            for m in 0..<contextLength {
                let source = (c * s + Self.firstContextPosition + m) * width
                for d in 0..<width { gradient[ctxBase + m * width + d] += embeddingGradient[source + d] }
            }
        }
        return gradient
    }
}

/// The learnable context: M vectors of the text width, shared by all classes or one set per class.
public struct ContextVectors: Sendable, Equatable, Codable {
    public let count: Int  // M
    public let width: Int
    public let classSpecific: Bool
    /// [groups, M, width] with groups = 1 (shared) or the class count.
    public var values: [Float]

    public init(count: Int, width: Int, classSpecific: Bool, values: [Float]) {
        precondition(count > 0 && width > 0 && values.count % (count * width) == 0)
        (self.count, self.width, self.classSpecific, self.values) = (count, width, classSpecific, values)
    }

    public var groups: Int { values.count / (count * width) }

    /// Start of the vectors used by class `c`.
    func offset(class c: Int) -> Int { classSpecific ? c * count * width : 0 }

    /// Vector `m` of group `g`.
    func vector(group g: Int, position m: Int) -> ArraySlice<Float> {
        let start = (g * count + m) * width
        return values[start..<start + width]
    }
}
