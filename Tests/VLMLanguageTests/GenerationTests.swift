// Generation API behaviour on stories260K (fast): sampling, stop conditions, cancellation,
// log-probabilities, cache forking, attention weights; plus the chat template and UTF-8 streaming.
import Foundation
import Testing
@testable import VLMLanguage
import VLMTensor

@Suite struct GenerationTests {
    var model: LanguageModel { LoadedModels.stories }
    var prompt: [Int32] { model.tokenize("Once upon a time") }

    @Test func seededSamplingIsReproducible() throws {
        let p = SamplingParameters(temperature: 0.9, topK: 40, topP: 0.95, minP: 0.02, repetitionPenalty: 1.1, seed: 42, maxTokens: 24)
        let a = try model.generate(prompt: prompt, parameters: p)
        let b = try model.generate(prompt: prompt, parameters: p)
        var other = p
        other.seed = 7
        let c = try model.generate(prompt: prompt, parameters: other)
        #expect(a.tokenIDs == b.tokenIDs && a.text == b.text)
        #expect(a.tokenIDs != c.tokenIDs)
        #expect(a.tokenIDs.count == 24 && a.stopReason == .length)
    }

    @Test func topKOneIsGreedy() throws {
        let greedy = try model.generate(prompt: prompt, parameters: SamplingParameters(maxTokens: 20))
        let topOne = try model.generate(prompt: prompt, parameters: SamplingParameters(temperature: 1.5, topK: 1, seed: 3, maxTokens: 20))
        #expect(greedy.tokenIDs == topOne.tokenIDs)
    }

    @Test func samplerFollowsTheDistributionAndFilters() {
        // p = (0.25, 0.75) at temperature 1.
        var sampler = Sampler(SamplingParameters(temperature: 1, seed: 1))
        let logits: [Float] = [0, log(3)]
        let ones = (0..<20_000).filter { _ in sampler.sample(logits, history: []) == 1 }.count
        #expect(abs(Double(ones) / 20_000 - 0.75) < 0.015)

        let wide: [Float] = [5, 4, 3, 0, -1]
        var topK = Sampler(SamplingParameters(temperature: 5, topK: 2, seed: 2))
        #expect(Set((0..<500).map { _ in topK.sample(wide, history: []) }).isSubset(of: [0, 1]))
        var minP = Sampler(SamplingParameters(temperature: 5, minP: 0.3, seed: 3))  // keeps p >= 0.3 * p_max: tokens 0, 1
        #expect(Set((0..<500).map { _ in minP.sample(wide, history: []) }).isSubset(of: [0, 1]))
        var topP = Sampler(SamplingParameters(temperature: 1, topP: 0.5, seed: 4))  // token 0 alone holds p > 0.5
        #expect(Set((0..<200).map { _ in topP.sample(wide, history: []) }) == [0])
        var penalised = Sampler(SamplingParameters(repetitionPenalty: 10))
        #expect(penalised.sample(wide, history: [0]) == 1)
    }

    /// The sampler sorts only the head of the distribution; the survivors must be those of the plain
    /// definition (sort everything, cut by top-k, then top-p, then min-p), on flat, peaked, tied and
    /// heavy-tailed logits over a real vocabulary size.
    @Test func candidateFiltersEqualTheFullSortDefinition() {
        func reference(_ x: [Float], topK: Int, topP: Float, minP: Float) -> [Int] {
            var order = x.indices.sorted { x[$0] != x[$1] ? x[$0] > x[$1] : $0 < $1 }
            if topK > 0 { order = Array(order.prefix(topK)) }
            let best = x[order[0]]
            let weights = order.map { Double(expf(x[$0] - best)) }
            let total = weights.reduce(0, +)
            if topP < 1 {
                var cumulative = 0.0
                if let cut = weights.indices.first(where: { cumulative += weights[$0]; return cumulative >= Double(topP) * total }) {
                    order = Array(order.prefix(cut + 1))
                }
            }
            if minP > 0 { order = Array(order.prefix { expf(x[$0] - best) >= minP }) }
            return order
        }
        var random = Xoshiro256StarStar(seed: 11)
        let n = 49_152
        let shapes: [(String, (Int) -> Float)] = [
            ("flat", { _ in Float(random.nextUnit()) }),
            ("peaked", { i in i == 1234 ? 30 : Float(random.nextUnit()) * 8 }),
            ("spread", { _ in Float(random.nextUnit()) * 60 - 30 }),
            ("tied", { i in Float(i % 7) }),
            ("heavy", { _ in -40 * Float(random.nextUnit()) * Float(random.nextUnit()) }),
        ]
        let filters: [(topK: Int, topP: Float, minP: Float)] = [
            (0, 0.95, 0), (40, 0.95, 0.02), (0, 1, 0.05), (0, 0.999, 0), (5, 1, 0), (0, 1, 0), (100_000, 0.5, 0), (0, 0.3, 1e-9),
        ]
        for (name, shape) in shapes {
            let logits = (0..<n).map(shape)
            for f in filters {
                let fast = Sampler.candidates(logits, topK: f.topK, topP: f.topP, minP: f.minP)
                let slow = reference(logits, topK: f.topK, topP: f.topP, minP: f.minP)
                // Mass sums may round differently at the top-p boundary: at most one token apart there.
                #expect(fast.count == slow.count || (f.topP < 1 && abs(fast.count - slow.count) <= 1), "\(name) \(f) \(fast.count) vs \(slow.count)")
                let common = min(fast.count, slow.count)
                #expect(Array(fast.prefix(common)) == Array(slow.prefix(common)), "\(name) \(f)")
            }
        }
    }

    @Test func stopsAtStopStringAndReportsTextBeforeIt() throws {
        let full = try model.generate(prompt: prompt, parameters: SamplingParameters(maxTokens: 40))
        #expect(full.text.contains(" Lily"))
        var streamed = ""
        let stopped = try model.generate(prompt: prompt, parameters: SamplingParameters(maxTokens: 40, stopStrings: [" Lily"]),
                                         onToken: { streamed += $0.text })
        #expect(stopped.stopReason == .stop)
        #expect(stopped.text == String(full.text[..<full.text.range(of: " Lily")!.lowerBound]))
        #expect(streamed == stopped.text)
    }

    @Test func cancellationStopsBetweenTokens() throws {
        var produced = 0
        let token = CancellationToken()
        let result = try model.generate(prompt: prompt, parameters: SamplingParameters(maxTokens: 50),
                                        compute: ComputeContext(cancellation: token),
                                        onToken: { _ in produced += 1; if produced >= 3 { token.cancel() } })
        #expect(result.stopReason == .cancelled && result.tokenIDs.count == 3)
    }

    @Test func cancellationStopsAForwardPassBetweenLayers() throws {
        let t = model.transformer
        let layers = t.hyperparameters.blockCount
        var cache = t.makeCache(capacity: 64)
        let secondPoll = CancellationToken(cancellingAtPoll: 2)
        #expect(throws: ComputeCancelled.self) {
            _ = try t.forward(prompt, cache: &cache, compute: ComputeContext(cancellation: secondPoll))
        }
        #expect(secondPoll.polls == 2 && layers > 1)  // asked again before the second layer, not after the batch
        #expect(cache.count == 0)  // a cancelled pass leaves no positions behind
        var fresh = t.makeCache(capacity: 64)
        #expect(try t.forward(prompt, cache: &cache).logits == t.forward(prompt, cache: &fresh).logits)

        let thirdPoll = CancellationToken(cancellingAtPoll: 3)  // 1: before the batch, 2: layer 0, 3: layer 1
        let result = try model.generate(prompt: prompt, parameters: SamplingParameters(maxTokens: 5),
                                        compute: ComputeContext(cancellation: thirdPoll))
        #expect(result.stopReason == .cancelled && result.tokenIDs.isEmpty)
    }

    @Test func logProbabilitiesAgreeWithScore() throws {
        let result = try model.generate(prompt: prompt, parameters: SamplingParameters(maxTokens: 12, logProbabilities: true))
        let total = result.logProbabilities!.reduce(0, +)
        let scored = try model.score(context: prompt, continuations: [result.tokenIDs, [result.tokenIDs[0]]])
        #expect(abs(scored[0] - total) < 1e-3)
        #expect(abs(scored[1] - result.logProbabilities![0]) < 1e-6)
        #expect(result.logProbabilities!.allSatisfy { $0 <= 0 })
    }

    @Test func forkedCachesContinueIndependently() throws {
        let t = model.transformer
        var shared = t.makeCache(capacity: 64)
        _ = try t.forward(prompt, cache: &shared)
        var a = shared, b = shared
        let la = try t.forward([432], cache: &a).logits
        let lb = try t.forward([286], cache: &b).logits
        #expect(shared.count == prompt.count && a.count == prompt.count + 1 && b.count == prompt.count + 1)
        var fresh = t.makeCache(capacity: 64)
        let direct = try t.forward(prompt + [286], cache: &fresh).logits
        #expect(zip(lb, direct).allSatisfy { abs($0 - $1) < 1e-3 })
        #expect(la != lb)
    }

    @Test func attentionWeightsAreCausalDistributions() throws {
        var cache = model.transformer.makeCache(capacity: 64)
        let n = prompt.count, heads = model.hyperparameters.headCount
        let out = try model.transformer.forward(prompt, cache: &cache, logits: .all, attentionLayers: [0, 4])
        #expect(out.logits.count == n * model.hyperparameters.vocabularySize)
        for layer in [0, 4] {
            let w = out.attention[layer]!
            #expect(w.count == n * heads * n)
            for i in 0..<n {
                for h in 0..<heads {
                    let row = w[((i * heads + h) * n)..<((i * heads + h) * n + n)]
                    #expect(abs(row.reduce(0, +) - 1) < 2e-3)
                    #expect(row.dropFirst(i + 1).allSatisfy { $0 == 0 })
                }
            }
        }
    }

    @Test func contextOverflowIsAnError() throws {
        let small = try LanguageModel(path: TestPaths.stories, contextLength: 8)
        #expect(throws: LanguageModelError.self) { try small.generate(prompt: Array(repeating: 1, count: 8)) }
        let result = try small.generate(prompt: [1, 403], parameters: SamplingParameters(maxTokens: 100))
        #expect(result.stopReason == .length && result.tokenIDs.count == 7)  // the last one needs no cache slot
        #expect(throws: LanguageModelError.tokenOutOfRange(9999, vocabularySize: 512)) {
            var cache = small.transformer.makeCache(capacity: 8)
            _ = try small.transformer.forward([9999], cache: &cache)
        }
    }

    @Test func describesTheModel() {
        let d = model.description
        #expect(d.architecture == "llama" && d.vocabularySize == 512 && d.quantization == "f32" && d.tokenizer == "llama")
        #expect(d.parameterCount > 200_000 && d.parameterCount < 300_000)
        #expect(model.memoryBytes > 1_000_000)
    }
}

@Suite struct TextTests {
    @Test func utf8StreamHoldsBackPartialSequences() {
        let text = "aé😀日b"
        let bytes = Array(text.utf8)
        for split in 0...bytes.count {
            var d = UTF8StreamDecoder()
            let out = d.append(Array(bytes[..<split])) + d.append(Array(bytes[split...])) + d.flush()
            #expect(out == text)
        }
        var d = UTF8StreamDecoder()
        var pieces: [String] = []
        for b in bytes { pieces.append(d.append([b])) }
        #expect(pieces.joined() == text && !pieces.contains { $0.contains("\u{FFFD}") })
    }

    @Test func byteFallbackTokensDecodeAcrossTokens() throws {
        let model = LoadedModels.stories
        let ids = model.tokenize("日本")  // not in the 512-token vocabulary: byte tokens
        #expect(ids.count > 3)
        #expect(model.tokenizer.decode(Array(ids.dropFirst())) == " 日本")
    }

    @Test func chatTemplateFormats() throws {
        let chatML = ChatTemplate(template: "{% for m in messages %}<|im_start|>{{m.role}}...")!
        #expect(chatML.format == .chatML && chatML.defaultSystemMessage == nil)
        #expect(chatML.render([ChatMessage(role: "user", content: "Hi")]) == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
        let llama2 = ChatTemplate(template: "{{ bos_token + '[INST] ' + content + ' [/INST]' }}")!
        #expect(llama2.format == .llama2)
        let rendered = llama2.render([ChatMessage(role: "system", content: "Be brief."), ChatMessage(role: "user", content: "Hi"),
                                      ChatMessage(role: "assistant", content: "Hello."), ChatMessage(role: "user", content: "Bye")])
        #expect(rendered == "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello. </s><s>[INST] Bye [/INST]")
        #expect(ChatTemplate(template: "{% for m in messages %}{{ m }}") == nil)  // unparseable and of no known family
    }

    /// SmolLM2's own template, rendered by jinja2 in the fixture script.
    @Test(.enabled(if: smolAvailable, smolMissing)) func smolLM2ChatTemplateMatchesJinja() throws {
        let (model, fixture) = try parityModel(.smolLM2)
        let chat = fixture["chat"] as! [String: Any]
        let messages = (chat["messages"] as! [[String: String]]).map { ChatMessage(role: $0["role"]!, content: $0["content"]!) }
        let rendered = try #require(model.chatTemplate).render(messages)
        #expect(rendered == chat["rendered"] as! String)
        #expect(model.tokenizer.encode(rendered, parseSpecial: true) == int32s(chat["ids"]))
    }
}
