// One run of the engine, top to bottom: for each stage, open its tag, generate N candidates from the
// shared context, let the judge pick one, close the tag. A step-by-step stage does this per step and,
// after each step, attributes it to image patches and may look again at the selected crop.
import Foundation
import VLMLanguage
import VLMTensor

final class ReasoningRun {
    let model: LanguageModel
    let config: ReasoningConfiguration
    let judge: any CandidateJudge
    let prepared: any PreparedImage
    let builder: PromptBuilder
    let parser: StageParser
    let question: String
    let evidence: [Evidence]
    let start: Date
    let compute: ComputeContext
    let onEvent: (ReasoningEvent) -> Void

    /// The assistant turn so far: what the model reads after the prompt (with the looks' chunks at
    /// `lookMarks`).
    var transcript = ""
    /// Looks' chunks in the context: each after the transcript's first `offset` UTF-8 bytes.
    var lookMarks: [(offset: Int, look: ContextPiece)] = []
    var cache: PrefixCache
    var stages: [StageResult] = []
    var steps: [ReasoningStep] = []
    var verdicts: [JudgeVerdict] = []
    var timings = ReasoningTimings()
    var looks = 0
    /// Generation units so far (stages and steps); each unit's candidates get their own seeds.
    var units = 0

    /// The stage in progress, so an interrupted run can still report it.
    var current: (index: Int, stage: StageSpecification, started: Date)?
    var currentText = ""
    var pendingText = ""
    var stageGenerated = 0, stageChosen = 0, stageSamplingSeconds = 0.0
    /// The chosen candidate's attention to the image in the last step unit (attention front ends).
    var stepAttention: ImageAttention?
    /// Heatmaps draw here while decoding goes on; their steps' attribution events wait for them.
    let worker = StepWorker()

    init(reasoner: VisualReasoner, prepared: any PreparedImage, builder: PromptBuilder, question: String,
         evidence: [Evidence], start: Date, compute: ComputeContext, onEvent: @escaping (ReasoningEvent) -> Void) {
        model = reasoner.languageModel
        config = reasoner.configuration
        judge = reasoner.makeJudge()
        self.prepared = prepared
        self.builder = builder
        parser = StageParser(tags: config.stages.map(\.tag))
        self.question = question
        self.evidence = evidence
        self.start = start
        self.compute = compute
        self.onEvent = onEvent
        cache = PrefixCache(model: model)
    }

    func execute() -> ReasoningResult {
        for item in evidence { onEvent(.evidence(item)) }
        var outcome = ReasoningResult.Outcome.completed
        do {
            for (index, stage) in config.stages.enumerated() { try runStage(index, stage) }
            try joinStepWork()
        } catch {
            outcome = error is ComputeCancelled || compute.isCancelled ? .cancelled : .failed(String(describing: error))
            try? joinStepWork()
            closeInterruptedStage()
        }
        timings.totalSeconds = Date().timeIntervalSince(start)
        timings.contextTokens = ContextPiece.slotCount(contextPieces())
        let answerTag = (config.stages.first { $0.role == .answer } ?? config.stages.last!).tag
        return ReasoningResult(outcome: outcome, stages: stages, answer: stages.first { $0.tag == answerTag }?.text ?? "",
                               steps: steps, evidence: evidence, verdicts: verdicts, transcript: transcript, timings: timings)
    }

    // MARK: Stages

    func runStage(_ index: Int, _ stage: StageSpecification) throws {
        try compute.checkCancellation()
        if stage.role == .evidence { transcript += evidence.map { "[\($0.text)]\n" }.joined() }
        transcript += "<\(stage.tag)>"
        current = (index, stage, Date())
        (currentText, pendingText, stageGenerated, stageChosen, stageSamplingSeconds) = ("", "", 0, 0, 0)
        onEvent(.stageBegan(index: index, tag: stage.tag))

        if stage.role == .steps {
            transcript += "\n"
            try runSteps(stage)
        } else {
            let chosen = try generateUnit(stage, step: nil, maxTokens: config.maxTokensPerStage, extraStops: [])
            currentText = parser.stageContent(chosen.text).content
            transcript += currentText
        }
        transcript += "</\(stage.tag)>\n"
        try joinStepWork()
        finishStage(complete: true)
        onEvent(.stageEnded(index: index, tag: stage.tag, text: currentText))
    }

    /// Steps until the model closes the stage, stops, or the step / token budget runs out.
    func runSteps(_ stage: StageSpecification) throws {
        var used = 0, written: [String] = [], emptyInARow = 0
        while written.count < config.maxSteps, used < config.maxTokensPerStage {
            let stepIndex = steps.count
            let result = try generateUnit(stage, step: stepIndex, maxTokens: config.maxTokensPerStage - used,
                                          extraStops: StepBoundary.stops)
            used += result.tokenIDs.count
            let (content, closedByMarker) = parser.stageContent(result.text)
            let ending = result.stopReason == .stop
                ? StepBoundary.ending(kept: result.text, raw: model.tokenizer.decode(result.tokenIDs), otherStops: parser.stopStrings)
                : .other
            var text = content
            if case let .sentence(mark) = ending, !text.isEmpty { text.append(mark) }
            if text.isEmpty {
                // A blank line: go on, unless the model is stuck producing nothing.
                emptyInARow += 1
                if result.tokenIDs.isEmpty || emptyInARow >= 3 { break }
            } else {
                emptyInARow = 0
                written.append(text)
                currentText = written.joined(separator: " ")
                pendingText = ""
                transcript += text + "\n"
                try attributeAndLook(step: stepIndex, stage: stage.tag, text: text)
            }
            // A tag, end of generation or the token limit ends the stage; a sentence or line end does not.
            if closedByMarker || ending == .other { break }
        }
    }

    func finishStage(complete: Bool) {
        guard let (_, stage, started) = current else { return }
        let text = complete ? currentText : [currentText, pendingText].filter { !$0.isEmpty }.joined(separator: " ")
        stages.append(StageResult(tag: stage.tag, text: text, generatedTokens: stageGenerated, chosenTokens: stageChosen,
                                  seconds: Date().timeIntervalSince(started),
                                  tokensPerSecond: stageSamplingSeconds > 0 ? Double(stageGenerated) / stageSamplingSeconds : 0,
                                  complete: complete))
        current = nil
    }

    func closeInterruptedStage() { finishStage(complete: false) }

    // MARK: Candidates

    /// Samples `beamWidth` candidates continuing the transcript and returns the judge's choice.
    func generateUnit(_ stage: StageSpecification, step: Int?, maxTokens: Int, extraStops: [String]) throws -> GenerationResult {
        let pieces = contextPieces()
        let history = ContextPiece.textTokens(pieces)
        let visual = prepared.visualPrefix
        let used = PrefixCache.endSlot(of: pieces, after: visual)
        // Keep room to close the tag after the stage.
        let room = model.contextLength - used - 8
        guard room > 0 else {
            throw LanguageModelError.contextFull(needed: used + 8, capacity: model.contextLength)
        }
        var parameters = SamplingParameters(temperature: config.temperature, topP: config.topP,
                                            repetitionPenalty: config.repetitionPenalty, maxTokens: min(maxTokens, room),
                                            stopStrings: parser.stopStrings + extraStops, logProbabilities: true)
        let sharedLogits = config.sharePrefix ? try cache.extend(to: pieces, model: model, visual: visual, compute: compute) : []
        let unit = units
        units += 1

        // A step on an attention front end records its own tokens' attention to the image, per candidate.
        let readout = step == nil ? nil : prepared.attentionReadout
        var attentions: [ImageAttention] = []
        var results: [GenerationResult] = []
        for candidate in 0..<config.beamWidth {
            parameters.seed = Self.seed(config.seed, unit: unit, candidate: candidate)
            let sample = { [parameters] (kv: inout KVCache, logits: [Float]) in
                try self.sampleCandidate(candidate, of: stage, step: step, cache: &kv, logits: logits, history: history,
                                         parameters: parameters, readout: readout)
            }
            let (result, attention): (GenerationResult, ImageAttention?)
            if !config.sharePrefix {
                var own = PrefixCache(model: model)
                let logits = try own.extend(to: pieces, model: model, visual: visual, compute: compute)
                (result, attention) = try own.continueInPlace({ try sample(&$0, logits) }, appended: { $0.0.tokenIDs })
            } else if config.beamWidth == 1 {
                // One candidate samples on the shared cache itself: no fork to copy, and the tokens it
                // samples stay cached for the next unit, which re-runs only where the re-tokenized text differs.
                (result, attention) = try cache.continueInPlace({ try sample(&$0, sharedLogits) }, appended: { $0.0.tokenIDs })
            } else {
                // Forking the cache copies it lazily: candidates share the prefix's keys and values.
                var fork = cache.cache
                (result, attention) = try sample(&fork, sharedLogits)
            }
            if let attention { attentions.append(attention) }
            stageGenerated += result.tokenIDs.count
            stageSamplingSeconds += result.timings.generationSeconds
            timings.generatedTokens += result.tokenIDs.count
            results.append(result)
            if result.stopReason == .cancelled {
                pendingText = parser.stageContent(result.text).content
                throw ComputeCancelled()
            }
        }
        let winner = try choose(results, stage: stage, step: step)
        stageChosen += results[winner].tokenIDs.count
        stepAttention = attentions.isEmpty ? nil : attentions[winner]
        return results[winner]
    }

    /// One candidate sampled on `cache` (the context, which gets the candidate's tokens); a step on an
    /// attention front end records its own tokens' attention to the image.
    func sampleCandidate(_ candidate: Int, of stage: StageSpecification, step: Int?, cache: inout KVCache, logits: [Float],
                         history: [Int32], parameters: SamplingParameters,
                         readout: AttentionReadout?) throws -> (GenerationResult, ImageAttention?) {
        var attention = readout.map { ImageAttention(readout: $0, heads: model.hyperparameters.headCount) }
        let result = try model.continueGeneration(cache: &cache, lastLogits: logits, history: history, parameters: parameters,
                                                  compute: compute, attentionLayers: readout?.layers ?? [],
                                                  onAttention: { attention?.add($0) }) { token in
            if timings.firstTokenSeconds == nil { timings.firstTokenSeconds = Date().timeIntervalSince(start) }
            onEvent(.token(stage: stage.tag, step: step, candidate: candidate, text: token.text))
        }
        if var recorded = attention {
            try feedLastToken(of: result, cache: &cache, into: &recorded)
            attention = recorded
        }
        return (result, attention)
    }

    /// Generation never feeds its last token back (nothing reads its keys); a step's map includes it, so
    /// it runs once here with attention recorded (one token's pass, counted as attribution time).
    func feedLastToken(of result: GenerationResult, cache: inout KVCache, into attention: inout ImageAttention) throws {
        guard attention.tokens < result.tokenIDs.count, let last = result.tokenIDs.last, cache.count < cache.capacity,
              result.stopReason != .cancelled else { return }
        let started = Date()
        defer { timings.attributionSeconds += Date().timeIntervalSince(started) }
        let output = try model.transformer.forward([last], cache: &cache, attentionLayers: attention.readout.layers,
                                                   compute: compute.uncancellable)
        attention.add(output.attention)
    }

    /// Candidate seeds: distinct per unit and candidate, reproducible from the configured seed.
    static func seed(_ base: UInt64, unit: Int, candidate: Int) -> UInt64 {
        base &+ UInt64(unit + 1) &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(candidate) &* 0xBF58_476D_1CE4_E5B9
    }

    /// The tournament winner (the only candidate when the beam is 1).
    func choose(_ results: [GenerationResult], stage: StageSpecification, step: Int?) throws -> Int {
        guard results.count > 1 else { return 0 }
        let candidates = results.enumerated().map { index, result in
            let lp = result.logProbabilities ?? []
            return JudgeCandidate(index: index, text: parser.stageContent(result.text).content,
                                  meanLogProbability: lp.isEmpty ? nil : lp.reduce(0, +) / Double(lp.count))
        }
        // An empty candidate (the model closed the stage at once) never beats one with content: only the
        // non-empty ones go to the judge, unless none has content.
        let nonEmpty = candidates.filter { !$0.text.isEmpty }
        let contenders = nonEmpty.isEmpty ? candidates : nonEmpty
        guard contenders.count > 1 else { return contenders[0].index }
        let judgeStart = Date()
        defer { timings.judgeSeconds += Date().timeIntervalSince(judgeStart) }
        let winner = try Tournament.run(count: contenders.count, compare: { a, b in
            try compute.checkCancellation()
            return try judge.scores(JudgeRequest(question: question, stage: stage, context: transcript,
                                                 first: contenders[a], second: contenders[b]), compute: compute)
        }, onVerdict: { v in
            let verdict = JudgeVerdict(stage: stage.tag, step: step, first: contenders[v.first].index,
                                       second: contenders[v.second].index, winner: contenders[v.winner].index,
                                       firstScore: v.scores.0, secondScore: v.scores.1)
            verdicts.append(verdict)
            onEvent(.verdict(verdict))
        }).winner
        return contenders[winner].index
    }

    // MARK: Attribution and looks

    /// The step's attribution map and selection, then a closer look at the selected crop whose tokens or
    /// tags join the context before the next step. The heatmap draws on the worker meanwhile; the
    /// attribution event goes out once it is done (before the look's event).
    func attributeAndLook(step: Int, stage: String, text: String) throws {
        try joinStepWork()
        let attributionStart = Date()
        let stepMap = try stepAttention.map { prepared.attribution(attention: $0.mean) } ?? prepared.attribution(of: text, compute: compute)
        guard let map = stepMap else {
            steps.append(ReasoningStep(index: step, stage: stage, text: text, attribution: nil, look: nil))
            return
        }
        let attribution = try Attribution.stepAttribution(
            step: step, text: text, caption: "", map: map, image: prepared.image, pixelBox: prepared.pixelBox(of:),
            selection: config.selection, heatmaps: .off, alpha: config.heatmapAlpha)
        timings.attributionSeconds += Date().timeIntervalSince(attributionStart)
        steps.append(ReasoningStep(index: step, stage: stage, text: text, attribution: attribution, look: nil))
        submitHeatmap(of: attribution, at: steps.count - 1)

        let wholeGrid = GridBox(row: 0, column: 0, rows: map.gridHeight, columns: map.gridWidth)
        // Looking at the whole grid again would only repeat the whole-image evidence.
        if let selection = attribution.selection, looks < config.maxLooks, selection.gridBox != wholeGrid {
            try compute.checkCancellation()
            let lookStart = Date()
            let evidence = try look(at: selection.pixelBox, step: step)
            looks += 1
            let seconds = Date().timeIntervalSince(lookStart)
            timings.lookSeconds += seconds
            steps[steps.count - 1].look = evidence
            try joinStepWork()
            onEvent(.look(LookEvent(step: step, evidence: evidence, seconds: seconds)))
        }
    }

    /// A closer look at `box`: on a front end that encodes crops into the context, the crop's chunks join
    /// it here, after the step that asked for them, and (sharing the prefix) run at once on the end of
    /// the running cache; otherwise the front end's text evidence does. The evidence line follows.
    func look(at box: PixelBox, step: Int) throws -> Evidence {
        guard let chunks = try prepared.lookChunks(at: box, step: step, compute: compute) else {
            let evidence = try prepared.lookEvidence(at: box, step: step, compute: compute)
            transcript += "[\(evidence.text)]\n"
            return evidence
        }
        let slot = PrefixCache.endSlot(of: contextPieces(), after: prepared.visualPrefix)
        let lookSlots = ContextPiece.image(id: lookMarks.count, segments: chunks.segments).slotCount
        // The crop, its evidence line and room for a step after it.
        let needed = slot + lookSlots + builder.continuation("[\(chunks.evidence.text)]\n").count + ReasoningRun.roomAfterLook
        guard needed <= model.contextLength else { throw ReasoningError.contextTooSmall(needed: needed, capacity: model.contextLength) }
        lookMarks.append((transcript.utf8.count, .image(id: lookMarks.count, segments: chunks.segments)))
        prepared.place(chunks, at: slot)
        transcript += "[\(chunks.evidence.text)]\n"
        if config.sharePrefix {
            _ = try cache.extend(to: contextPieces(), model: model, visual: prepared.visualPrefix, compute: compute)
        }
        return chunks.evidence
    }

    /// Positions a look leaves free after its chunks and evidence line: enough to close the stage.
    static let roomAfterLook = 16

    /// The context after the visual prefix: the prompt and transcript as text tokens, with each look's
    /// chunks where it was taken (the text after a look tokenized on its own, as mtmd does).
    func contextPieces() -> [ContextPiece] {
        var pieces: [ContextPiece] = [], from = transcript.startIndex
        for mark in lookMarks {
            let to = transcript.utf8.index(transcript.startIndex, offsetBy: mark.offset)
            pieces += [.tokens(tokens(of: from..<to)), mark.look]
            from = to
        }
        return pieces + [.tokens(tokens(of: from..<transcript.endIndex))]
    }

    /// Tokens of a stretch of the transcript: with the prompt before it when it starts the transcript.
    private func tokens(of range: Range<String.Index>) -> [Int32] {
        let text = String(transcript[range])
        return range.lowerBound == transcript.startIndex ? builder.tokens(text) : builder.continuation(text)
    }

    /// Draws `attribution`'s heatmap on the worker (or, with heatmaps off, reports it at once).
    func submitHeatmap(of attribution: StepAttribution, at index: Int) {
        guard config.heatmaps != .off else { return onEvent(.attribution(attribution)) }
        let (image, heatmaps, alpha, pixelBox) = (prepared.image, config.heatmaps, config.heatmapAlpha, PixelBoxes(prepared: prepared))
        worker.submit(tag: index) {
            var drawn = attribution
            try Attribution.drawHeatmap(&drawn, caption: "step \(drawn.step): \(drawn.text)", image: image, pixelBox: pixelBox.callAsFunction,
                                        heatmaps: heatmaps, alpha: alpha)
            return drawn
        }
    }

    /// Takes back the worker's heatmaps, in order: each completes its step and its attribution event goes out.
    func joinStepWork() throws {
        for finished in worker.join() {
            timings.heatmapSeconds += finished.seconds
            let attribution = try finished.result.get()
            steps[finished.tag].attribution = attribution
            onEvent(.attribution(attribution))
        }
    }
}
