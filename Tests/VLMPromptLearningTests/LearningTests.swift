import Foundation
import Testing
import VLMCLIP
import VLMLanguage
import VLMTensor
@testable import VLMPromptLearning

/// End-to-end runs on the synthetic task (tiny random CLIP, features around a hidden template's
/// class embeddings): every method must beat the zero-shot baseline on held-out data.
@Suite(.serialized) struct LearningTests {
    static let task = try! SyntheticTask()
    var task: SyntheticTask { Self.task }

    func run(_ configure: (inout PromptLearningConfiguration) -> Void, proposer: (any TemplateProposer)? = nil,
             steps: inout [PromptLearningStep]) throws -> PromptLearningResult {
        var configuration = PromptLearningConfiguration()
        configuration.seed = 5
        configure(&configuration)
        return try optimisePrompt(clip: task.clip, tokenizer: Shared.tokenizer, classNames: SyntheticTask.classNames,
                                  train: task.train, validation: task.validation, test: task.test,
                                  configuration: configuration, proposer: proposer, onStep: { steps.append($0) })
    }

    func report(_ name: String, _ r: PromptLearningResult) {
        print("\(name): zero-shot val \(r.zeroShot.validation) test \(r.zeroShot.test!) | bank val \(r.bankEnsemble.validation) | learned val \(r.learned.validation) test \(r.learned.test!) | loss \(r.initialTrainingLoss ?? .nan) → \(r.finalTrainingLoss ?? .nan) | '\(r.promptText)'")
    }

    @Test func softPromptCoOp() throws {
        var steps: [PromptLearningStep] = []
        let r = try run({ $0.method = .soft; $0.optimiser = .adam; $0.learningRate = 0.002; $0.steps = 120 }, steps: &steps)
        report("CoOp", r)
        #expect(r.finalTrainingLoss! < r.initialTrainingLoss! * 0.5)
        #expect(r.learned.test! >= r.zeroShot.test! + 0.2)
        #expect(r.learned.validation >= r.zeroShot.validation + 0.2)
        #expect(steps.count == 120 && steps.allSatisfy { $0.loss!.isFinite && $0.learningRate! >= 0 })
        #expect(steps.filter { $0.validationAccuracy != nil }.count == 24)
        #expect(r.nearestTokens.count == 1 && r.nearestTokens[0].count == 4)  // "a photo of a": 4 tokens
        #expect(r.learnedPrompt.context != nil)
        // The kept state is the best on validation.
        let bestSeen = steps.compactMap(\.validationAccuracy).max()!
        #expect(abs(r.learned.validation - max(bestSeen, r.zeroShot.validation)) < 1e-9)
    }

    @Test func classSpecificRandomContext() throws {
        var steps: [PromptLearningStep] = []
        let r = try run({
            $0.method = .soft; $0.classSpecific = true; $0.initialisation = .random; $0.contextLength = 3
            $0.optimiser = .adam; $0.learningRate = 0.01; $0.steps = 80; $0.warmupSteps = 5
        }, steps: &steps)
        report("CoOp class-specific", r)
        #expect(r.finalTrainingLoss! < r.initialTrainingLoss!)
        #expect(r.learned.test! >= r.zeroShot.test! + 0.2)
        #expect(r.nearestTokens.count == SyntheticTask.classNames.count)
        #expect(steps[0].learningRate! < steps[5].learningRate!)  // warm-up
    }

    @Test func projectedPromptIsExactReadableText() throws {
        var steps: [PromptLearningStep] = []
        let r = try run({ $0.method = .projected; $0.optimiser = .adam; $0.learningRate = 0.001; $0.steps = 100 }, steps: &steps)
        report("PEZ", r)
        #expect(r.learned.test! >= r.zeroShot.test! + 0.2)
        let template = try #require(r.templates.first)
        // The decoded words re-tokenize to exactly the projected ids.
        let ids = r.nearestTokens[0].map(\.id)
        let words = String(template.dropLast(4))  // " {}."
        #expect(Shared.tokenizer.encode(words) == ids)
        #expect(Shared.tokenizer.encode(PromptTemplates.fill(template, with: "cat")) == ids + Shared.tokenizer.encode("cat."))
        #expect(r.nearestTokens[0].allSatisfy { $0.distance < 1e-6 })  // the kept state is the projection itself
        // The saved text, run through the ordinary zero-shot path, gives the learned accuracy.
        let classifier = try ZeroShotClassifier(model: task.clip, tokenizer: Shared.tokenizer, classNames: SyntheticTask.classNames, templates: [template])
        #expect(abs(score(classWeights: classifier.weights, images: task.test, logitScale: task.clip.logitScale).accuracy - r.learned.test!) < 1e-9)
    }

    @Test func everyCandidateTokenRoundTrips() throws {
        let weights = task.clip.textTowerWeights
        let vocabulary = TokenVocabulary(tokenizer: Shared.tokenizer, tokenEmbedding: weights.tokenEmbedding, width: weights.width)
        print("projection vocabulary: \(vocabulary.count) whole-word tokens")
        #expect(vocabulary.count > 20000)
        var rng = SplitMix64(seed: 3)
        for _ in 0..<200 {
            let ids = (0..<6).map { _ in vocabulary.ids[rng.nextIndex(below: vocabulary.count)] }
            let text = Shared.tokenizer.decode(ids).trimmingCharacters(in: .whitespaces)
            #expect(Shared.tokenizer.encode(text) == ids)
        }
    }

    /// SGD needs a far smaller rate than Adam here: the tiny model's token embeddings have norm ~0.06
    /// and the gradients w.r.t. them are ~100.
    @Test func sgdWithMomentum() throws {
        let rate: Float = 1e-6
        var steps: [PromptLearningStep] = []
        let r = try run({ $0.method = .soft; $0.optimiser = .sgd; $0.learningRate = rate; $0.steps = 80 }, steps: &steps)
        report("CoOp SGD \(rate)", r)
        #expect(r.finalTrainingLoss! < r.initialTrainingLoss!)
        #expect(r.learned.test! >= r.zeroShot.test! + 0.2)
    }

    @Test func templateBankSelection() throws {
        var steps: [PromptLearningStep] = []
        let r = try run({ $0.method = .templateBank; $0.maximumBankTemplates = 4 }, steps: &steps)
        report("bank", r)
        #expect(r.templates.first == SyntheticTask.hiddenTemplate)
        #expect(r.learned.test! >= r.zeroShot.test! + 0.3)
        #expect(r.learned.validation >= r.bankEnsemble.validation)
        #expect(steps.count == 4)
    }

    /// KgCoOp and the vocabulary-distance penalty: larger weights keep the prompt closer to the bank
    /// and to real words, trading accuracy.
    @Test func regularisedSoftPromptsTradeOff() throws {
        var rows: [(Float, Float, Double, Float)] = []
        for (anchor, distance) in [(Float(0), Float(0)), (0, 1), (0, 10), (1, 0), (3, 0)] {
            var steps: [PromptLearningStep] = []
            let r = try run({
                $0.method = .soft; $0.optimiser = .adam; $0.learningRate = 0.002; $0.steps = 60
                $0.textAnchorWeight = anchor; $0.vocabularyDistanceWeight = distance; $0.evaluationInterval = 60
            }, steps: &steps)
            let meanDistance = r.nearestTokens[0].map(\.distance).reduce(0, +) / Float(r.nearestTokens[0].count)
            rows.append((anchor, distance, r.learned.test!, meanDistance))
            print("λ_kg \(anchor) μ_vocab \(distance): test accuracy \(r.learned.test!) mean nearest-token distance \(meanDistance) '\(r.promptText)'")
        }
        #expect(rows[2].3 < rows[0].3 * 0.6)  // strong vocabulary pull → closer to words
        #expect(rows[1].3 < rows[0].3)
        #expect(rows.allSatisfy { $0.2 >= 0.3 })  // zero-shot: 0.1
    }

    @Test func languageModelSearchWithStubProposer() throws {
        /// Proposes junk and one good template; records what it was shown.
        final class Stub: TemplateProposer, @unchecked Sendable {
            var shown: [[String]] = []
            func propose(examples: [(template: String, accuracy: Double)], count: Int, round: Int, compute: ComputeContext) throws -> [String] {
                shown.append(examples.map(\.template))
                return ["", "{}{}{}", "1. \"\(SyntheticTask.hiddenTemplate)\"", "no slot here", String(repeating: "x ", count: 200) + "{}"]
            }
            func fluency(of text: String, compute: ComputeContext) throws -> Double? { -1.5 }
        }
        let stub = Stub()
        var steps: [PromptLearningStep] = []
        let r = try run({ $0.method = .languageModel; $0.languageModelRounds = 2; $0.bank = ["a photo of a {}.", "art of the {}."] },
                        proposer: stub, steps: &steps)
        report("LM stub", r)
        #expect(r.templates == [SyntheticTask.hiddenTemplate])
        #expect(r.learned.test! >= r.zeroShot.test! + 0.3)
        #expect(r.fluency == -1.5)
        #expect(r.proposalsReceived == 10 && r.validProposals == 2)  // the hidden template and "no slot here {}."
        #expect(steps.count == 2)
        #expect(stub.shown[1].first == SyntheticTask.hiddenTemplate)  // the best so far is fed back
    }

    /// The real tiny story model (stories260K) as proposer: its proposals are poor, but the loop must
    /// run, parse and always end with a valid template.
    @Test func languageModelSearchWithStories260K() throws {
        let path = Fixtures.shared.appendingPathComponent("models/stories260K.gguf")
        let model = try LanguageModel(path: path)
        var steps: [PromptLearningStep] = []
        let r = try run({
            $0.method = .languageModel; $0.languageModelRounds = 2; $0.languageModelCandidates = 3
            $0.languageModelMaxTokens = 24; $0.bank = ["a photo of a {}."]
        }, proposer: LanguageModelProposer(model: model, maxTokens: 24, temperature: 0.8, seed: 1), steps: &steps)
        report("LM stories260K", r)
        print("stories260K: \(r.validProposals) of \(r.proposalsReceived) proposals were valid new templates")
        #expect(r.proposalsReceived == 6)
        let template = try #require(r.templates.first)
        #expect(template.components(separatedBy: "{}").count == 2)
        #expect(TemplateCandidate.parse(template, tokenizer: Shared.tokenizer, classNames: SyntheticTask.classNames, contextLength: 77) == template)
        #expect(steps.count == 2)
        // The search keeps the best template on the training shots (the seed is in the pool from the start):
        // training accuracy never falls from round to round, and the result is the last round's best.
        // (Validation accuracy is not guaranteed: the choice is made on the training shots.)
        let trainAccuracies = steps.compactMap(\.trainAccuracy)
        #expect(trainAccuracies.count == 2 && zip(trainAccuracies, trainAccuracies.dropFirst()).allSatisfy { $0 <= $1 })
        #expect(r.trainAccuracy == trainAccuracies.last)
        let fluency = try #require(r.fluency)
        #expect(fluency < 0 && fluency.isFinite)
        print("fluency \(fluency); meta-prompt:\n\(LanguageModelProposer.metaPrompt(examples: [("a photo of a {}.", 0.15)]))")
    }

    @Test func parsesProposalsRobustly() {
        func parse(_ raw: String) -> String? {
            TemplateCandidate.parse(raw, tokenizer: Shared.tokenizer, classNames: SyntheticTask.classNames, contextLength: 77)
        }
        #expect(parse("  - a photo of my {}.  | accuracy: 80%\nmore") == "a photo of my {}.")
        #expect(parse("prompt: a drawing of a") == "a drawing of a {}.")
        #expect(parse("2) 'the {} in the {} wild'") == "the {} in the wild")
        #expect(parse("") == nil)
        #expect(parse("{}.") == nil)
        #expect(parse("\u{7}bell {}") == nil)
        #expect(parse(String(repeating: "word ", count: 100)) == nil)
    }

    @Test func cancellationReturnsBestSoFar() throws {
        var steps: [PromptLearningStep] = []
        let cancellation = CancellationToken()
        var configuration = PromptLearningConfiguration()
        (configuration.method, configuration.optimiser, configuration.learningRate, configuration.steps) = (.soft, .adam, 0.002, 100)
        do {
            _ = try optimisePrompt(clip: task.clip, tokenizer: Shared.tokenizer, classNames: SyntheticTask.classNames,
                                   train: task.train, validation: task.validation, test: task.test, configuration: configuration,
                                   proposer: nil, compute: ComputeContext(cancellation: cancellation), onStep: {
                                       steps.append($0)
                                       if steps.count >= 30 { cancellation.cancel() }
                                   })
            Issue.record("expected cancellation")
        } catch let cancelled as ComputeCancelled {
            let partial = try #require(cancelled.partial as? PromptLearningResult)
            #expect(partial.cancelled && partial.stepsRun == 30)
            #expect(steps.count == 30)
            #expect(partial.learned.validation >= partial.zeroShot.validation)
            #expect(partial.learnedPrompt.context != nil)
        }
    }

    /// Cancelled while the baselines are computed (before any step): the one error, nothing to return.
    @Test func cancellationBeforeTheFirstStepHasNoPartialResult() throws {
        let cancellation = CancellationToken()
        cancellation.cancel()
        var steps = 0
        #expect {
            _ = try optimisePrompt(clip: task.clip, tokenizer: Shared.tokenizer, classNames: SyntheticTask.classNames,
                                   train: task.train, validation: task.validation, test: task.test,
                                   configuration: PromptLearningConfiguration(), proposer: nil,
                                   compute: ComputeContext(cancellation: cancellation), onStep: { _ in steps += 1 })
        } throws: { error in
            guard let cancelled = error as? ComputeCancelled else { return false }
            return cancelled.partial == nil
        }
        #expect(steps == 0)
    }

    @Test func cancelledLanguageModelSearchKeepsBestTemplate() throws {
        struct Good: TemplateProposer {
            func propose(examples: [(template: String, accuracy: Double)], count: Int, round: Int, compute: ComputeContext) throws -> [String] {
                [SyntheticTask.hiddenTemplate]
            }
            func fluency(of text: String, compute: ComputeContext) throws -> Double? { nil }
        }
        var configuration = PromptLearningConfiguration()
        (configuration.method, configuration.languageModelRounds, configuration.bank) = (.languageModel, 5, ["a photo of a {}."])
        let cancellation = CancellationToken()
        #expect {
            _ = try optimisePrompt(clip: task.clip, tokenizer: Shared.tokenizer, classNames: SyntheticTask.classNames,
                                   train: task.train, validation: task.validation, test: task.test, configuration: configuration,
                                   proposer: Good(), compute: ComputeContext(cancellation: cancellation), onStep: { _ in cancellation.cancel() })
        } throws: { error in
            guard let partial = (error as? ComputeCancelled)?.partial as? PromptLearningResult else { return false }
            return partial.stepsRun == 1 && partial.templates == [SyntheticTask.hiddenTemplate] && partial.learned.test! > 0.9
        }
    }

    /// Same seed and inputs → identical run (random initialisation, LM sampling seeds, everything).
    @Test func runsAreDeterministic() throws {
        var steps: [PromptLearningStep] = []
        let configure: (inout PromptLearningConfiguration) -> Void = {
            $0.initialisation = .random; $0.contextLength = 3; $0.optimiser = .adam; $0.learningRate = 0.003; $0.steps = 15
        }
        let a = try run(configure, steps: &steps)
        let b = try run(configure, steps: &steps)
        #expect(a.learnedPrompt == b.learnedPrompt)
        #expect(steps[0..<15].map(\.loss) == steps[15..<30].map(\.loss))
        var other = PromptLearningConfiguration()
        configure(&other)
        #expect(a.learnedPrompt.configuration.seed == 5 && other.seed == 0)
    }

    @Test func earlyStoppingKeepsBestState() throws {
        var steps: [PromptLearningStep] = []
        // A huge learning rate makes validation accuracy stall or fall: patience stops the run.
        let r = try run({ $0.method = .soft; $0.optimiser = .adam; $0.learningRate = 0.5; $0.steps = 200; $0.patience = 3 }, steps: &steps)
        #expect(r.stoppedEarly && r.stepsRun < 200)
        #expect(r.learned.validation >= r.zeroShot.validation)
    }
}
