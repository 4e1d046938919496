import Foundation
import VLMCLIP
import VLMImage
import VLMWire

/// dataset/evaluate: zero-shot accuracy over a CIFAR-format file, batch by batch, with progress,
/// one partial result per batch, and a confusion matrix. Image embeddings go through the image
/// cache, so a later evaluation (or prompt optimisation) on the same records reuses them.
func evaluateDataset(_ params: EvaluateParams, context: RequestContext, services: Services) async throws -> EvaluateResult {
    let started = ContinuousClock.now
    let clip = try await services.clipModel(params.model)
    let layout: CIFARDataset.Layout
    switch params.format ?? "cifar10" {
    case "cifar10": layout = .cifar10
    case "cifar100": layout = .cifar100(useFineLabel: true)
    case "cifar100-coarse": layout = .cifar100(useFineLabel: false)
    case let other: throw RPCError.invalidParams("params.format: expected \"cifar10\", \"cifar100\" or \"cifar100-coarse\", got \"\(other)\"")
    }
    let labels: [String]
    switch (params.labels, params.labelsFile) {
    case (let list?, nil): labels = try validatedLabels(list, field: "params.labels")
    case (nil, let file?): labels = try validatedLabels(CIFARDataset.labelNames(contentsOf: file), field: "params.labelsFile")
    default: throw RPCError.invalidParams("params: give exactly one of 'labels' or 'labelsFile'")
    }
    let templates = try resolveTemplates(params.templates, field: "params.templates")
    let batchSize = params.batchSize ?? 32
    guard (1...1024).contains(batchSize) else { throw RPCError.invalidParams("params.batchSize: expected an integer in 1...1024") }
    let dataset = try CIFARDataset(path: params.dataset, layout: layout)
    let count = min(params.limit ?? dataset.count, dataset.count)
    guard count > 0 else { throw RPCError.invalidParams("params.limit: expected at least 1 record (the dataset has \(dataset.count))") }

    let progress = await context.beginProgress(title: "Evaluating \(clip.id) on \(count) images")
    let runtime = services.clip
    let classifier = try await context.compute { flag in
        try ZeroShotClassifier(classNames: labels, templateEmbeddings:
            runtime.classTemplateEmbeddings(labels: labels, templates: templates, clip: clip, cancellation: flag))
    }
    var confusion = Array(repeating: Array(repeating: 0, count: labels.count), count: labels.count)
    var correct = 0, correctTop5 = 0
    for start in stride(from: 0, to: count, by: batchSize) {
        try context.checkCancellation()
        let end = min(start + batchSize, count)
        let records = try (start..<end).map { try dataset.record(at: $0) }
        if let bad = records.first(where: { $0.label >= labels.count }) {
            throw RPCError(code: ErrorCode.datasetUnreadable, message:
                "\(params.dataset): a record has label \(bad.label) but only \(labels.count) labels were given")
        }
        let embeddings = try await context.compute { flag in
            try runtime.embed(records.map { (CLIPRuntime.imageId(for: $0.image), $0.image) }, with: clip,
                              batchSize: batchSize, cancellation: flag)
        }
        let logits = classifier.logits(imageEmbeddings: embeddings.map(\.embedding), logitScale: clip.model.logitScale)
        for (record, row) in zip(records, logits) {
            let ranked = row.indices.sorted { row[$0] > row[$1] }
            confusion[record.label][ranked[0]] += 1
            if ranked[0] == record.label { correct += 1 }
            if ranked.prefix(5).contains(record.label) { correctTop5 += 1 }
        }
        await context.sendPartial(EvaluatePartial(processed: end, total: count, correct: correct, accuracy: Double(correct) / Double(end)))
        await progress.report(fraction: Double(end) / Double(count), message: "\(end)/\(count), accuracy \(String(format: "%.2f", 100 * Double(correct) / Double(end)))%")
    }
    await progress.end()
    let perClass = confusion.indices.map { c -> Double in
        let total = confusion[c].reduce(0, +)
        return total == 0 ? 0 : Double(confusion[c][c]) / Double(total)
    }
    return EvaluateResult(
        model: clip.id, dataset: params.dataset, labels: labels, templates: templates.count, count: count,
        accuracy: Double(correct) / Double(count), top5Accuracy: Double(correctTop5) / Double(count),
        perClassAccuracy: perClass, confusion: confusion, seconds: (ContinuousClock.now - started).seconds)
}
