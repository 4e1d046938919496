import Foundation
import Testing
import VLMCLIP
import VLMImage
import VLMTensor
@testable import VLMPromptLearning

@Suite struct LearnedPromptTests {
    var directory: URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("prompt-tests-\(UUID().uuidString)")
        try! FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    @Test func softPromptRoundTripsAndClassifies() throws {
        let task = try SyntheticTask()
        var configuration = PromptLearningConfiguration()
        (configuration.optimiser, configuration.learningRate, configuration.steps, configuration.seed) = (.adam, 0.002, 30, 9)
        let result = try optimisePrompt(clip: task.clip, tokenizer: Shared.tokenizer, classNames: SyntheticTask.classNames,
                                        train: task.train, validation: task.validation, test: task.test,
                                        configuration: configuration, proposer: nil)
        let url = directory.appendingPathComponent("prompt.safetensors")
        try result.learnedPrompt.save(to: url)
        let loaded = try LearnedPrompt.load(from: url)
        #expect(loaded == result.learnedPrompt)
        #expect(loaded.configuration.seed == 9)
        // The file is a plain safetensors file with the context tensor.
        let file = try SafeTensorsFile(url: url)
        #expect(file.entries["context"]?.shape == [1, 4, task.clip.textTowerWeights.width])
        #expect(file.metadata["method"] == "soft")
        let classifier = try loaded.classifierWeights(clip: task.clip, tokenizer: Shared.tokenizer)
        let accuracy = score(classWeights: classifier.weights, images: task.test, logitScale: task.clip.logitScale).accuracy
        #expect(abs(accuracy - result.learned.test!) < 1e-9)
        // A shared context transfers to other class names.
        let other = try loaded.classifierWeights(clip: task.clip, tokenizer: Shared.tokenizer, classNames: ["apple", "pear"])
        #expect(other.weights.count == 2)
    }

    @Test func templatePromptRoundTrips() throws {
        var configuration = PromptLearningConfiguration()
        configuration.method = .templateBank
        let prompt = LearnedPrompt(method: .templateBank, classNames: ["cat", "dog"], templates: ["a photo of the {}.", "art of a {}."],
                                   context: nil, configuration: configuration)
        let url = directory.appendingPathComponent("bank.safetensors")
        try prompt.save(to: url)
        let loaded = try LearnedPrompt.load(from: url)
        #expect(loaded == prompt)
        let weights = try loaded.classifierWeights(clip: Shared.quickGELU, tokenizer: Shared.tokenizer)
        let expected = try ZeroShotClassifier(model: Shared.quickGELU, tokenizer: Shared.tokenizer, classNames: ["cat", "dog"], templates: prompt.templates)
        #expect(weights.weights == expected.weights)
    }

    @Test func rejectsBadFiles() throws {
        let dir = directory
        let garbage = dir.appendingPathComponent("garbage.safetensors")
        try Data([1, 2, 3]).write(to: garbage)
        #expect(throws: PromptLearningError.self) { try LearnedPrompt.load(from: garbage) }
        let foreign = dir.appendingPathComponent("foreign.safetensors")
        try SafeTensorsWriter.write([("x", [2], [1, 2])], metadata: ["format": "other"], to: foreign)
        #expect { try LearnedPrompt.load(from: foreign) } throws: { "\($0)".contains("not a learned prompt") }
        // Context shape inconsistent with the class count of a class-specific prompt.
        let bad = dir.appendingPathComponent("bad.safetensors")
        let config = String(decoding: try JSONEncoder().encode(PromptLearningConfiguration()), as: UTF8.self)
        try SafeTensorsWriter.write([("context", [3, 2, 8], [Float](repeating: 0, count: 48))], metadata: [
            "format": "vlmd-learned-prompt", "version": "1", "method": "soft", "class_names": "[\"a\",\"b\"]",
            "templates": "[]", "configuration": config, "class_specific": "true",
        ], to: bad)
        #expect { try LearnedPrompt.load(from: bad) } throws: { "\($0)".contains("shape") }
    }
}

@Test func configurationJSONIsReadable() throws {
    var configuration = PromptLearningConfiguration()
    let encoder = JSONEncoder()
    encoder.outputFormatting = .sortedKeys
    let phrase = String(decoding: try encoder.encode(configuration), as: UTF8.self)
    #expect(phrase.contains("\"initialisation\":{\"phrase\":\"a photo of a\"}"))
    configuration.initialisation = .random
    let random = try encoder.encode(configuration)
    #expect(String(decoding: random, as: UTF8.self).contains("\"initialisation\":\"random\""))
    #expect(try JSONDecoder().decode(PromptLearningConfiguration.self, from: random) == configuration)
}

@Test func partialConfigurationKeepsDefaults() throws {
    let configuration = try JSONDecoder().decode(PromptLearningConfiguration.self,
                                                 from: Data(#"{"method": "projected", "steps": 300, "initialisation": "random"}"#.utf8))
    var expected = PromptLearningConfiguration()
    (expected.method, expected.steps, expected.initialisation) = (.projected, 300, .random)
    #expect(configuration == expected)
    #expect(throws: DecodingError.self) { try JSONDecoder().decode(PromptLearningConfiguration.self, from: Data(#"{"method": "magic"}"#.utf8)) }
}
