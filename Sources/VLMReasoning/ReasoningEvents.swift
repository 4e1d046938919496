// What a run reports while it works (events) and when it ends (result).

/// A judge's decision between two candidates of one generation unit.
public struct JudgeVerdict: Sendable, Equatable {
    public var stage: String
    /// The reasoning step the candidates are for (nil for a whole stage).
    public var step: Int?
    /// Candidate indices compared, and the one that won.
    public var first: Int, second: Int, winner: Int
    /// The judge's scores (higher is better); for the pairwise judge, summed log p of the answer naming each.
    public var firstScore: Double, secondScore: Double
}

/// The attribution of one reasoning step.
public struct StepAttribution: Sendable, Equatable {
    public var step: Int
    public var text: String
    public var map: AttributionMap
    /// nil when selection is off.
    public var selection: PatchSelectionResult?
    /// The heatmap PNG when heatmaps are `.inline`.
    public var heatmapPNG: [UInt8]?
    /// Where the heatmap was written when heatmaps go to a directory.
    public var heatmapPath: String?
}

/// A crop re-encoded because a step relied on it.
public struct LookEvent: Sendable, Equatable {
    public var step: Int
    public var evidence: Evidence
    public var seconds: Double
}

public enum ReasoningEvent: Sendable {
    /// Evidence about the whole image or a region, before the stages start.
    case evidence(Evidence)
    case stageBegan(index: Int, tag: String)
    /// Text streamed by one candidate (`step` is set inside a step-by-step stage).
    case token(stage: String, step: Int?, candidate: Int, text: String)
    case verdict(JudgeVerdict)
    /// One per reasoning step, after the step's text is chosen.
    case attribution(StepAttribution)
    case look(LookEvent)
    /// `text` is the chosen content, without tags.
    case stageEnded(index: Int, tag: String, text: String)
}

public struct StageResult: Sendable, Equatable {
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
}

public struct ReasoningStep: Sendable, Equatable {
    public var index: Int
    public var stage: String
    public var text: String
    public var attribution: StepAttribution?
    /// Evidence from looking again at the selected crop, added to the context before the next step.
    public var look: Evidence?
}

public struct ReasoningTimings: Sendable, Equatable {
    /// Encoding the image, its regions and the initial evidence.
    public var visionSeconds: Double = 0
    /// From the start of the run to the first streamed token.
    public var firstTokenSeconds: Double?
    public var judgeSeconds: Double = 0
    public var attributionSeconds: Double = 0
    public var lookSeconds: Double = 0
    public var totalSeconds: Double = 0
    /// Tokens in the final context (prompt, evidence, chosen stages).
    public var contextTokens: Int = 0
    /// Tokens sampled over all stages and candidates.
    public var generatedTokens: Int = 0
}

public struct ReasoningResult: Sendable {
    public enum Outcome: Sendable, Equatable {
        case completed
        case cancelled
        /// Generation failed part-way (e.g. the context filled); what was produced is kept.
        case failed(String)
    }

    public var outcome: Outcome
    /// Stages in order, the last one possibly incomplete.
    public var stages: [StageResult]
    /// The answer stage's text (empty if the run stopped before it).
    public var answer: String
    public var steps: [ReasoningStep]
    public var evidence: [Evidence]
    public var verdicts: [JudgeVerdict]
    /// The assistant text the model saw and wrote: tags, evidence lines, chosen stage contents.
    public var transcript: String
    public var timings: ReasoningTimings
}
