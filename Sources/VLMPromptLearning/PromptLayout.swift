import VLMCLIP

/// Where the learnable context sits in each class's prompt. CoOp's "end" class-token position:
///
///     [SOT] ctx_1 … ctx_M  <class-name tokens> .  [EOT]
///
/// or, when learning names for the classes, in the class name's place inside a fixed template:
///
///     [SOT] <template before {}> ctx_1 … ctx_M <template after {}> [EOT]
///
/// and how the prompts are packed into rows for the text tower. With a shared context the
/// positions up to its end are the same for every class and, under the causal mask, never see what
/// follows: they are packed once as a shared prefix, followed by each class's remaining positions
/// (name, ".", EOT) as a segment that attends to the prefix. With class-specific contexts every
/// class is its own segment. Either way only positions up to each prompt's EOT exist.
struct PromptLayout: Sendable {
    /// What the context stands for.
    enum Slot: Sendable, Equatable {
        /// Words before the class name (CoOp).
        case beforeClassName
        /// The class name itself, inside `template` (which holds one "{}").
        case className(template: String)
    }

    /// Token ids per class as open_clip would see them; the M context slots hold 0 (never looked up).
    let tokens: [[Int32]]
    let contextLength: Int  // M
    let classSpecific: Bool
    /// Position of the first context vector in every prompt.
    let contextStart: Int
    /// Packed rows: each row's position in its prompt and its token (nil: a context slot).
    let positions: [Int]
    let rowTokens: [Int32?]
    /// Packed row of context vector m of group g, at index g·M + m.
    let contextRows: [Int]
    /// Packed row of each class's [EOT], where the text tower pools.
    let pooledRows: [Int]
    let segments: AttentionSegments

    var classCount: Int { tokens.count }
    var rowCount: Int { positions.count }

    init(tokenizer: CLIPTokenizer, classNames: [String], contextLength: Int, classSpecific: Bool, maximumTokens: Int,
         slot: Slot = .beforeClassName) throws {
        var rows: [[Int32]] = []
        let before = slot.tokensBefore(tokenizer: tokenizer)
        for (index, name) in classNames.enumerated() {
            let row = [tokenizer.startOfText] + before + [Int32](repeating: 0, count: contextLength)
                + slot.tokensAfter(className: name, tokenizer: tokenizer) + [tokenizer.endOfText]
            guard row.count <= maximumTokens else {
                throw PromptLearningError.invalidConfiguration(
                    "class \(index) '\(name)' needs \(row.count) tokens with \(contextLength) context vectors; the text tower holds \(maximumTokens)")
            }
            rows.append(row)
        }
        (tokens, self.contextLength, self.classSpecific) = (rows, contextLength, classSpecific)

        let contextStart = 1 + before.count, contextEnd = contextStart + contextLength
        self.contextStart = contextStart
        var positions: [Int] = [], rowTokens: [Int32?] = [], contextRows: [Int] = [], pooledRows: [Int] = []
        var segments: [Range<Int>] = []
        // Appends positions `range` of class c's prompt as packed rows.
        func append(_ c: Int, _ range: Range<Int>) {
            for p in range {
                if p >= contextStart && p < contextEnd { contextRows.append(positions.count) }
                rowTokens.append(p >= contextStart && p < contextEnd ? nil : rows[c][p])
                positions.append(p)
            }
        }
        let sharedPrefix = classSpecific ? 0 : contextEnd
        if sharedPrefix > 0 { append(0, 0..<sharedPrefix) }
        for c in rows.indices {
            let start = positions.count
            append(c, sharedPrefix..<rows[c].count)
            segments.append(start..<positions.count)
            pooledRows.append(positions.count - 1)
        }
        (self.positions, self.rowTokens, self.contextRows, self.pooledRows) = (positions, rowTokens, contextRows, pooledRows)
        self.segments = AttentionSegments(prefixLength: sharedPrefix, segments: segments)
    }

    /// Input embeddings [rowCount, width]: token embeddings, with the context vectors in their slots.
    func embeddings(context: ContextVectors, tokenEmbedding: [Float], width: Int) -> [Float] {
        precondition(context.values.count == contextRows.count * width)
        var x = [Float](repeating: 0, count: rowCount * width)
        for (r, token) in rowTokens.enumerated() {
            guard let token else { continue }
            for d in 0..<width { x[r * width + d] = tokenEmbedding[Int(token) * width + d] }
        }
        for (i, r) in contextRows.enumerated() {
            for d in 0..<width { x[r * width + d] = context.values[i * width + d] }
        }
        return x
    }

    /// Gradient w.r.t. the context vectors from the gradient w.r.t. the packed embeddings.
    func contextGradient(_ embeddingGradient: [Float], width: Int) -> [Float] {
        var gradient = [Float](repeating: 0, count: contextRows.count * width)
        for (i, r) in contextRows.enumerated() {
            for d in 0..<width { gradient[i * width + d] = embeddingGradient[r * width + d] }
        }
        return gradient
    }
}

extension PromptLayout.Slot {
    /// The template's two sides around its "{}" (CoOp: nothing before, the name and "." after).
    private var templateSides: (before: String, after: String)? {
        guard case let .className(template) = self, let hole = template.range(of: "{}") else { return nil }
        return (String(template[..<hole.lowerBound]), String(template[hole.upperBound...]))
    }

    func tokensBefore(tokenizer: CLIPTokenizer) -> [Int32] {
        templateSides.map { tokenizer.encode($0.before) } ?? []
    }

    func tokensAfter(className: String, tokenizer: CLIPTokenizer) -> [Int32] {
        templateSides.map { tokenizer.encode($0.after) } ?? tokenizer.encode(className + ".")
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

    /// Vector `m` of group `g`.
    func vector(group g: Int, position m: Int) -> ArraySlice<Float> {
        let start = (g * count + m) * width
        return values[start..<start + width]
    }
}

extension PromptLearningConfiguration {
    /// Where a learned context goes: in the class name's place for `.names`, before it otherwise.
    var contextSlot: PromptLayout.Slot {
        method == .names ? .className(template: startingTemplate) : .beforeClassName
    }
}
