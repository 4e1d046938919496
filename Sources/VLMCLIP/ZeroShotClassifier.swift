import VLMTensor

/// Zero-shot classification weights (open_clip's build_zero_shot_classifier): for each class, the
/// mean of the L2-normalised text embeddings of every template filled with the class name,
/// renormalised. Scores are then logitScale · image · weight.
public struct ZeroShotClassifier: Sendable {
    public let classNames: [String]
    /// One unit-length [embedDim] vector per class.
    public let weights: [[Float]]

    public init(
        model: CLIPModel, tokenizer: CLIPTokenizer, classNames: [String], templates: [String],
        compute: ComputeContext = ComputeContext()
    ) throws {
        guard !classNames.isEmpty, !templates.isEmpty else { throw CLIPError.invalidInput("zero-shot classifier needs class names and templates") }
        let contextLength = model.config.text.contextLength
        var perClass: [[[Float]]] = []
        for name in classNames {
            try compute.checkCancellation()
            let tokens = templates.map { tokenizer.tokenize(PromptTemplates.fill($0, with: name), contextLength: contextLength) }
            perClass.append(try model.encodeText(tokens, compute: compute))
        }
        try self.init(classNames: classNames, templateEmbeddings: perClass)
    }

    /// From embeddings already computed (e.g. cached): `templateEmbeddings[class][template]`, each
    /// L2-normalised.
    public init(classNames: [String], templateEmbeddings: [[[Float]]]) throws {
        guard !classNames.isEmpty, classNames.count == templateEmbeddings.count,
              let dim = templateEmbeddings.first?.first?.count,
              templateEmbeddings.allSatisfy({ !$0.isEmpty && $0.allSatisfy { $0.count == dim } })
        else { throw CLIPError.invalidInput("zero-shot classifier needs one non-empty embedding set per class") }
        self.classNames = classNames
        self.weights = templateEmbeddings.map { embeddings in
            var mean = [Float](repeating: 0, count: dim)
            for embedding in embeddings { for d in mean.indices { mean[d] += embedding[d] } }
            return l2Normalized(mean)  // dividing by the count first would not change the direction
        }
    }

    /// logitScale · cosine similarity of each image embedding (normalised) with each class: [image][class].
    public func logits(imageEmbeddings: [[Float]], logitScale: Float) -> [[Float]] {
        imageEmbeddings.map { image in weights.map { logitScale * dot(image, $0) } }
    }
}
