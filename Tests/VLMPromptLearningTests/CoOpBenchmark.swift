import Foundation
import Testing
import VLMCLIP
import VLMTensor
@testable import VLMPromptLearning

/// Timing harness for bench/coop_step.sh, skipped unless COOP_BENCH_MODEL names the model directory
/// written by bench/coop_reference.py. (A test rather than a vlmbench subcommand because vlmbench
/// does not depend on VLMPromptLearning; this module is compiled with -O even in debug builds.)
@Suite struct CoOpBenchmark {
    static let modelDirectory = ProcessInfo.processInfo.environment["COOP_BENCH_MODEL"]

    @Test(.enabled(if: modelDirectory != nil)) func oneCoOpStep() throws {
        let environment = ProcessInfo.processInfo.environment
        let threads = Int(environment["COOP_BENCH_THREADS"] ?? "2") ?? 2
        let steps = Int(environment["COOP_BENCH_STEPS"] ?? "5") ?? 5
        ComputeContext.setBLASThreads(threads)
        let clip = try CLIPModel(directory: URL(fileURLWithPath: Self.modelDirectory!))
        let weights = clip.textTowerWeights
        let (m, shots) = (16, 16)
        let layout = try PromptLayout(tokenizer: Shared.tokenizer, classNames: SyntheticTask.classNames, contextLength: m, classSpecific: false, maximumTokens: 77)
        let objective = PromptObjective(tower: DifferentiableTextTower(weights: weights), layout: layout, logitScale: clip.logitScale,
                                        compute: ComputeContext(threads: threads))
        var rng = SplitMix64(seed: 1)
        var context = ContextVectors(count: m, width: weights.width, classSpecific: false,
                                     values: (0..<m * weights.width).map { _ in Float(0.02 * rng.nextGaussian()) })
        let images = FeatureSet(
            features: (0..<shots * 10).map { _ in l2Normalized((0..<clip.embedDim).map { _ in Float(rng.nextGaussian()) }) },
            labels: (0..<shots * 10).map { $0 / shots })
        var optimiser = ParameterOptimiser(kind: .sgd, count: context.values.count)
        func step() {
            let evaluation = objective.evaluate(context, images: images)
            optimiser.update(&context.values, gradient: evaluation.contextGradient, rate: 0.002)
        }
        step()  // warm-up
        var times: [Double] = []
        for _ in 0..<steps {
            let start = Date()
            step()
            times.append(Date().timeIntervalSince(start))
        }
        let median = times.sorted()[times.count / 2]
        print("{\"implementation\": \"swift\", \"threads\": \(threads), \"packed_rows\": \(layout.rowCount), \"sequence\": \(layout.tokens.map(\.count).max()!), \"median_seconds_per_step\": \(String(format: "%.4f", median)), \"min_seconds_per_step\": \(String(format: "%.4f", times.min()!))}")
    }

    /// A whole `optimisePrompt` call at RN50 text-tower size (random features): set-up (baselines:
    /// 19 templates × 10 classes through the text tower; the projection vocabulary) and the mean
    /// cost of a step including the per-step nearest-token reading and periodic validation.
    @Test(.enabled(if: modelDirectory != nil)) func fullRunAtRN50Size() throws {
        let clip = try CLIPModel(directory: URL(fileURLWithPath: Self.modelDirectory!))
        let threads = Int(ProcessInfo.processInfo.environment["COOP_BENCH_THREADS"] ?? "2") ?? 2
        ComputeContext.setBLASThreads(threads)
        var rng = SplitMix64(seed: 2)
        func features(_ perClass: Int) -> FeatureSet {
            FeatureSet(features: (0..<perClass * 10).map { _ in l2Normalized((0..<clip.embedDim).map { _ in Float(rng.nextGaussian()) }) },
                       labels: (0..<perClass * 10).map { $0 / perClass })
        }
        var configuration = PromptLearningConfiguration()
        (configuration.steps, configuration.evaluationInterval) = (10, 5)
        configuration.initialisation = .random
        configuration.contextLength = 16
        var stepTimes: [Date] = []
        let start = Date()
        _ = try optimisePrompt(clip: clip, tokenizer: Shared.tokenizer, classNames: SyntheticTask.classNames, train: features(16),
                               validation: features(4), test: nil, configuration: configuration, proposer: nil,
                               compute: ComputeContext(threads: threads), onStep: { _ in stepTimes.append(Date()) })
        let setup = stepTimes[0].timeIntervalSince(start)
        let perStep = stepTimes.last!.timeIntervalSince(stepTimes[0]) / Double(stepTimes.count - 1)
        print("{\"full_run_rn50_text\": {\"setup_and_first_step_seconds\": \(String(format: "%.2f", setup)), \"seconds_per_step\": \(String(format: "%.3f", perStep))}}")
    }

    /// Wall time of a whole soft-prompt run on the tiny model (the synthetic task of LearningTests).
    @Test(.enabled(if: modelDirectory != nil)) func tinyModelRunToConvergence() throws {
        let task = try SyntheticTask()
        var configuration = PromptLearningConfiguration()
        (configuration.optimiser, configuration.learningRate, configuration.steps, configuration.patience) = (.adam, 0.002, 400, 10)
        let start = Date()
        let r = try optimisePrompt(clip: task.clip, tokenizer: Shared.tokenizer, classNames: SyntheticTask.classNames,
                                   train: task.train, validation: task.validation, test: task.test, configuration: configuration, proposer: nil)
        print("{\"tiny_run\": {\"steps\": \(r.stepsRun), \"best_step\": \(r.bestStep), \"seconds\": \(String(format: "%.2f", Date().timeIntervalSince(start))), \"validation\": \(r.learned.validation), \"test\": \(r.learned.test!), \"zero_shot_test\": \(r.zeroShot.test!)}}")
    }
}
