import Foundation
import VLMCLIP
import VLMImage
import VLMTensor
import VLMWire

/// A dataset as a request names it. dataset/evaluate and optimise-prompt both open theirs through
/// here (and VLMImage's `LabelledDataset`), so they accept the same formats and give the same errors:
/// -32602 naming the field for an unknown format or missing class names, -32007 for a file that is
/// missing, malformed or labelled outside the class names.
struct DatasetRequest {
    var path: String
    var format: String?
    var labels: [String]?
    var labelsFile: String?
    /// Where these fields sit in the request ("params", "params.dataset"), for error messages.
    var field: String

    /// Opens the dataset at `path` (default: the request's own), with `classNames` in place of the
    /// request's labels when given (a test set read with its training set's classes).
    func open(path: String? = nil, classNames: [String]? = nil, limit: Int? = nil, pixelBudget: Int) throws -> LabelledDataset {
        let format = try datasetFormat()
        return try LabelledDataset(path: path ?? self.path, format: format, classNames: try classNames ?? self.classNames(for: format),
                                   limit: limit, pixelBudget: pixelBudget)
    }

    private func datasetFormat() throws -> LabelledDataset.Format {
        guard let format = LabelledDataset.Format(rawValue: self.format ?? "cifar10") else {
            let names = LabelledDataset.Format.allCases.map { "\"\($0.rawValue)\"" }
            throw RPCError.invalidParams("\(field).format: expected \(names.dropLast().joined(separator: ", ")) or \(names.last!), got \"\(self.format!)\"")
        }
        return format
    }

    /// The request's class names: `labels` or the lines of `labelsFile`; a list may give neither.
    private func classNames(for format: LabelledDataset.Format) throws -> [String]? {
        switch (labels, labelsFile) {
        case (let list?, nil): return try validatedLabels(list, field: "\(field).labels")
        case (nil, let file?): return try validatedLabels(CIFARDataset.labelNames(contentsOf: file), field: "\(field).labelsFile")
        case (nil, nil) where !format.needsClassNames: return nil
        default: throw RPCError.invalidParams("\(field): give exactly one of 'labels' or 'labelsFile'")
        }
    }
}

/// dataset/evaluate: zero-shot accuracy over a dataset, batch by batch, with progress, one partial
/// result per batch, and a confusion matrix. Image embeddings go through the image cache, so a later
/// evaluation (or prompt optimisation) on the same images reuses them.
func evaluateDataset(_ params: EvaluateParams, context: RequestContext, services: Services) async throws -> EvaluateResult {
    let started = ContinuousClock.now
    let clip = try await services.clipModel(params.model)
    let request = DatasetRequest(path: params.dataset, format: params.format, labels: params.labels, labelsFile: params.labelsFile, field: "params")
    let templates = try resolveTemplates(params.templates, field: "params.templates")
    let batchSize = params.batchSize ?? 32
    guard (1...1024).contains(batchSize) else { throw RPCError.invalidParams("params.batchSize: expected an integer in 1...1024") }
    let precision = try imagePrecision(params.precision)
    if let limit = params.limit, limit < 1 { throw RPCError.invalidParams("params.limit: expected at least 1 record") }
    let dataset = try request.open(limit: params.limit, pixelBudget: services.configuration.maxImagePixels)
    let labels = dataset.classNames
    let count = dataset.count

    let progress = await context.beginProgress(title: "Evaluating \(clip.id) on \(count) images")
    let runtime = services.clip
    let classifier = try await context.compute { compute in
        try ZeroShotClassifier(classNames: labels, templateEmbeddings:
            runtime.classTemplateEmbeddings(labels: labels, templates: templates, clip: clip, compute: compute))
    }
    var evaluation = ZeroShotEvaluation(classCount: labels.count)
    let steps = (count + batchSize - 1) / batchSize
    let batch: @Sendable (Int) -> Range<Int> = { step in step * batchSize..<min((step + 1) * batchSize, count) }
    // Records of batch i + 1 are read, hashed and preprocessed while the tower encodes batch i.
    try await runStagedSteps(count: steps, compute: context.computeContext, stage: { step, compute in
        try batch(step).map { index in
            try compute.checkCancellation()
            return runtime.stage(try dataset.image(at: index), clip: clip, precision: precision)
        }
    }, process: { staged, compute in
        try runtime.embed(staged: staged, with: clip, precision: precision, compute: compute).map(\.embedding)
    }, deliver: { step, embeddings in
        let range = batch(step)
        evaluation.add(logits: classifier.logits(imageEmbeddings: embeddings, logitScale: clip.model.logitScale),
                       labels: Array(dataset.labels[range]))
        await context.sendPartial(EvaluatePartial(processed: range.upperBound, total: count, correct: evaluation.correct,
                                                  accuracy: evaluation.accuracy))
        await progress.report(fraction: Double(range.upperBound) / Double(count),
                              message: "\(range.upperBound)/\(count), accuracy \(String(format: "%.2f", 100 * evaluation.accuracy))%")
    })
    await progress.end()
    return EvaluateResult(
        model: clip.id, dataset: params.dataset, labels: labels, templates: templates.count, count: count,
        accuracy: evaluation.accuracy, top5Accuracy: evaluation.top5Accuracy,
        perClassAccuracy: evaluation.perClassAccuracy, confusion: evaluation.confusion, seconds: (ContinuousClock.now - started).seconds)
}
