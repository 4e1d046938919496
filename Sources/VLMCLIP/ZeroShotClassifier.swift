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
        shouldCancel: () -> Bool = { false }
    ) throws {
        guard !classNames.isEmpty, !templates.isEmpty else { throw CLIPError.invalidInput("zero-shot classifier needs class names and templates") }
        let contextLength = model.config.text.contextLength
        var weights: [[Float]] = []
        for name in classNames {
            if shouldCancel() { throw CLIPError.cancelled }
            let tokens = templates.map { tokenizer.tokenize(PromptTemplates.fill($0, with: name), contextLength: contextLength) }
            let embeddings = try model.encodeText(tokens, shouldCancel: shouldCancel)
            var mean = [Float](repeating: 0, count: model.embedDim)
            for embedding in embeddings { for d in mean.indices { mean[d] += embedding[d] } }
            weights.append(l2Normalized(mean))  // dividing by the count first would not change the direction
        }
        self.classNames = classNames
        self.weights = weights
    }

    /// logitScale · cosine similarity of each image embedding (normalised) with each class: [image][class].
    public func logits(imageEmbeddings: [[Float]], logitScale: Float) -> [[Float]] {
        imageEmbeddings.map { image in weights.map { logitScale * dot(image, $0) } }
    }
}
