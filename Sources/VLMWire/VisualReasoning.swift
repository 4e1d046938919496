/// Wire types for `generate-with-visual-selection` (protocol/visual-reasoning.md).

public struct StageParam: Codable, Sendable {
    public var tag: String
    public var instruction: String
    /// "plain" | "evidence" (visual evidence written before it) | "steps" (per-step attribution) | "answer".
    public var role: String?

    public init(tag: String, instruction: String, role: String? = nil) {
        self.tag = tag; self.instruction = instruction; self.role = role
    }
}

public struct VisualReasoningParams: Codable, Sendable {
    /// CLIP model id and GGUF model id (each optional when exactly one of its kind is loaded).
    public var clip: String?
    public var lm: String?
    /// An `mmproj` model id (a vision tower + projector of any loaded type): the image enters the language
    /// model's context as the projector's chunks and attribution comes from its attention. Replaces `clip`.
    public var mmproj: String?
    /// Projector path: decoder layers whose attention (mean over heads and step tokens) makes the maps;
    /// default the last third.
    public var attentionLayers: [Int]?
    public var image: ImageInput
    public var question: String
    public var stages: [StageParam]?
    /// Candidates per stage (1...8); 1 is plain decoding.
    public var beam: Int?
    /// "pairwise" (the model compares candidates, LLaVA-CoT) or "loglik" (mean log-likelihood).
    public var judge: String?
    /// Share the KV cache of the common prefix across candidates (default true).
    public var sharePrefix: Bool?
    /// "off" | "topk" | "box" (default "box") | "learned" (a saved selector picks the region up front; steps select as "box").
    public var select: String?
    /// With select "learned": the saved selector's name (selector/train saveAs).
    public var selector: String?
    public var k: Int?
    /// Fraction of attribution mass the box covers (default 0.5).
    public var mass: Float?
    public var maxLooks: Int?
    public var maxSteps: Int?
    /// The label bank for CLIP evidence tags (default: vlmd's common-objects bank).
    public var labels: [String]?
    /// Region grid for regional tags: [rows, columns] (default [2, 2]).
    public var regionGrid: [Int]?
    public var maxTokensPerStage: Int?
    public var temperature: Float?
    public var topP: Float?
    public var seed: UInt64?
    /// Write heatmap PNGs (image + colour-mapped attribution) into this directory.
    public var heatmapDir: String?
    /// Send heatmap PNGs inline, base64, in attribution events.
    public var heatmapsInline: Bool?
    public var workDoneToken: RequestID?
    public var partialResultToken: RequestID?

    public init(clip: String? = nil, lm: String? = nil, mmproj: String? = nil, attentionLayers: [Int]? = nil, image: ImageInput,
                question: String, stages: [StageParam]? = nil, beam: Int? = nil, judge: String? = nil, sharePrefix: Bool? = nil,
                select: String? = nil, k: Int? = nil, mass: Float? = nil, maxLooks: Int? = nil, maxSteps: Int? = nil,
                labels: [String]? = nil, regionGrid: [Int]? = nil, maxTokensPerStage: Int? = nil, temperature: Float? = nil,
                topP: Float? = nil, seed: UInt64? = nil, heatmapDir: String? = nil, heatmapsInline: Bool? = nil,
                selector: String? = nil, workDoneToken: RequestID? = nil, partialResultToken: RequestID? = nil) {
        self.selector = selector
        self.clip = clip; self.lm = lm; self.mmproj = mmproj; self.attentionLayers = attentionLayers; self.image = image
        self.question = question; self.stages = stages; self.beam = beam; self.judge = judge; self.sharePrefix = sharePrefix
        self.select = select; self.k = k; self.mass = mass; self.maxLooks = maxLooks; self.maxSteps = maxSteps
        self.labels = labels; self.regionGrid = regionGrid; self.maxTokensPerStage = maxTokensPerStage
        self.temperature = temperature; self.topP = topP; self.seed = seed; self.heatmapDir = heatmapDir
        self.heatmapsInline = heatmapsInline; self.workDoneToken = workDoneToken; self.partialResultToken = partialResultToken
    }
}

/// One label of the bank with its probability (the reasoning engine's `LabelProbability`).
public struct TagScore: Codable, Sendable, Equatable {
    public var label: String
    public var probability: Float
    public init(label: String, probability: Float) { self.label = label; self.probability = probability }
}

public struct BoxParam: Codable, Sendable {
    public var x: Int, y: Int, width: Int, height: Int
    public init(x: Int, y: Int, width: Int, height: Int) { self.x = x; self.y = y; self.width = width; self.height = height }
}

public struct EvidenceInfo: Codable, Sendable {
    /// "image" | "region" | "look".
    public var source: String
    public var region: String?
    public var step: Int?
    /// In original image pixels.
    public var box: BoxParam?
    public var tags: [TagScore]
    public var text: String
    public init(source: String, region: String?, step: Int?, box: BoxParam?, tags: [TagScore], text: String) {
        self.source = source; self.region = region; self.step = step; self.box = box; self.tags = tags; self.text = text
    }
}

public struct SelectionInfo: Codable, Sendable {
    public var method: String
    /// Selected grid cells, row-major indices.
    public var cells: [Int]
    /// [row, column, rows, columns] on the grid.
    public var gridBox: [Int]
    /// In original image pixels.
    public var pixelBox: BoxParam
    public var mass: Float
    public init(method: String, cells: [Int], gridBox: [Int], pixelBox: BoxParam, mass: Float) {
        self.method = method; self.cells = cells; self.gridBox = gridBox; self.pixelBox = pixelBox; self.mass = mass
    }
}

public struct AttributionInfo: Codable, Sendable {
    public var step: Int
    public var text: String
    public var gridHeight: Int
    public var gridWidth: Int
    /// Row-major, non-negative, summing to 1.
    public var scores: [Float]
    public var normalization: String
    public var selection: SelectionInfo?
    public var heatmapPath: String?
    public var heatmapPNG: String?
    public init(step: Int, text: String, gridHeight: Int, gridWidth: Int, scores: [Float], normalization: String,
                selection: SelectionInfo?, heatmapPath: String?, heatmapPNG: String?) {
        self.step = step; self.text = text; self.gridHeight = gridHeight; self.gridWidth = gridWidth; self.scores = scores
        self.normalization = normalization; self.selection = selection; self.heatmapPath = heatmapPath; self.heatmapPNG = heatmapPNG
    }
}

/// A judge's decision between two candidates of one generation unit (the reasoning engine's `JudgeVerdict`).
public struct VerdictInfo: Codable, Sendable, Equatable {
    public var stage: String
    /// The reasoning step the candidates are for (nil for a whole stage).
    public var step: Int?
    /// Candidate indices compared, and the one that won.
    public var first: Int
    public var second: Int
    public var winner: Int
    /// The judge's scores (higher is better); for the pairwise judge, summed log p of the answer naming each.
    public var firstScore: Double
    public var secondScore: Double
    public init(stage: String, step: Int?, first: Int, second: Int, winner: Int, firstScore: Double, secondScore: Double) {
        self.stage = stage; self.step = step; self.first = first; self.second = second; self.winner = winner
        self.firstScore = firstScore; self.secondScore = secondScore
    }
}

/// One streamed event; `event` says which fields are set.
public struct VisualReasoningEvent: Codable, Sendable {
    /// "evidence" | "stage" | "token" | "verdict" | "attribution" | "look".
    public var event: String
    /// stage: "begin" | "end".
    public var phase: String?
    public var stage: String?
    public var stageIndex: Int?
    public var step: Int?
    public var candidate: Int?
    public var text: String?
    public var evidence: EvidenceInfo?
    public var verdict: VerdictInfo?
    public var attribution: AttributionInfo?
    public var seconds: Double?
    public init(event: String) { self.event = event }
}

/// One stage of a run (the reasoning engine's `StageResult`).
public struct StageInfo: Codable, Sendable, Equatable {
    public var tag: String
    public var text: String
    /// Tokens sampled for this stage over all candidates, and those of the chosen ones.
    public var generatedTokens: Int
    public var chosenTokens: Int
    /// Wall time of the stage (generation, judging, attribution, looks).
    public var seconds: Double
    /// generatedTokens over the time spent sampling them.
    public var tokensPerSecond: Double
    /// false when the run stopped inside this stage.
    public var complete: Bool
    public init(tag: String, text: String, generatedTokens: Int, chosenTokens: Int, seconds: Double, tokensPerSecond: Double, complete: Bool) {
        self.tag = tag; self.text = text; self.generatedTokens = generatedTokens; self.chosenTokens = chosenTokens
        self.seconds = seconds; self.tokensPerSecond = tokensPerSecond; self.complete = complete
    }
}

public struct StepInfo: Codable, Sendable {
    public var index: Int
    public var stage: String
    public var text: String
    public var attribution: AttributionInfo?
    public var look: EvidenceInfo?
    public init(index: Int, stage: String, text: String, attribution: AttributionInfo?, look: EvidenceInfo?) {
        self.index = index; self.stage = stage; self.text = text; self.attribution = attribution; self.look = look
    }
}

/// Where a run's time went (the reasoning engine's `ReasoningTimings`).
public struct ReasoningTimingsInfo: Codable, Sendable, Equatable {
    /// Encoding the image, its regions and the initial evidence.
    public var visionSeconds: Double
    /// From the start of the run to the first streamed token.
    public var firstTokenSeconds: Double?
    public var judgeSeconds: Double
    /// Per-step maps and selections on the run's thread (the CLIP text encoding of each step, or the
    /// attention of the step's last token), heatmaps excluded.
    public var attributionSeconds: Double
    /// Drawing and encoding (or writing) heatmap PNGs, on a worker thread beside decoding.
    public var heatmapSeconds: Double
    public var lookSeconds: Double
    public var totalSeconds: Double
    /// Tokens in the final context (prompt, evidence, chosen stages).
    public var contextTokens: Int
    /// Tokens sampled over all stages and candidates.
    public var generatedTokens: Int
    public init(visionSeconds: Double = 0, firstTokenSeconds: Double? = nil, judgeSeconds: Double = 0, attributionSeconds: Double = 0,
                heatmapSeconds: Double = 0, lookSeconds: Double = 0, totalSeconds: Double = 0, contextTokens: Int = 0, generatedTokens: Int = 0) {
        self.visionSeconds = visionSeconds; self.firstTokenSeconds = firstTokenSeconds; self.judgeSeconds = judgeSeconds
        self.attributionSeconds = attributionSeconds; self.heatmapSeconds = heatmapSeconds; self.lookSeconds = lookSeconds
        self.totalSeconds = totalSeconds
        self.contextTokens = contextTokens; self.generatedTokens = generatedTokens
    }
}

public struct VisualReasoningResult: Codable, Sendable {
    /// "completed" | "cancelled" | "failed".
    public var outcome: String
    public var failure: String?
    public var answer: String
    public var stages: [StageInfo]
    public var steps: [StepInfo]
    public var evidence: [EvidenceInfo]
    public var verdicts: [VerdictInfo]
    public var transcript: String
    public var timings: ReasoningTimingsInfo
    public init(outcome: String, failure: String?, answer: String, stages: [StageInfo], steps: [StepInfo], evidence: [EvidenceInfo],
                verdicts: [VerdictInfo], transcript: String, timings: ReasoningTimingsInfo) {
        self.outcome = outcome; self.failure = failure; self.answer = answer; self.stages = stages; self.steps = steps
        self.evidence = evidence; self.verdicts = verdicts; self.transcript = transcript; self.timings = timings
    }
}

// MARK: Requests

public enum VisualReasoningRequest: StreamingRequestType {
    public static let method = "generate-with-visual-selection"
    public typealias Params = VisualReasoningParams
    public typealias Result = VisualReasoningResult
    public typealias Partial = VisualReasoningEvent
}
