// What a run reports while it works (events) and when it ends (result).
//
// The verdicts, stages and timings are reported to clients exactly as the engine keeps them, so they
// are the protocol's value types (VLMWire, a dependency-free leaf of such values). Events, evidence,
// attributions and the result itself differ from their wire forms on purpose (enums and nested maps
// here, flat tagged objects there); the daemon converts each with one function.
import VLMWire

/// A judge's decision between two candidates of one generation unit.
public typealias JudgeVerdict = VerdictInfo

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

/// One stage of a run.
public typealias StageResult = StageInfo

public struct ReasoningStep: Sendable, Equatable {
    public var index: Int
    public var stage: String
    public var text: String
    public var attribution: StepAttribution?
    /// Evidence from looking again at the selected crop, added to the context before the next step.
    public var look: Evidence?
}

/// Where a run's time went.
public typealias ReasoningTimings = ReasoningTimingsInfo

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
