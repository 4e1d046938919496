// What a reasoning run does: its stages, beam search, judge, patch selection, looks and evidence.
import Foundation

/// One stage of the answer, written between `<tag>` and `</tag>`.
public struct StageSpecification: Sendable, Equatable {
    /// What the engine does around the stage, beyond generating its text.
    public enum Role: String, Sendable {
        /// Generated as one piece.
        case plain
        /// The whole-image and region evidence is written into the context just before the stage opens.
        case evidence
        /// Generated step by step (sentences or lines); each step gets an attribution map and may look again.
        case steps
        /// Its text is the run's answer.
        case answer
    }

    public var tag: String
    /// Told to the model in the prompt ("<tag>: instruction").
    public var instruction: String
    public var role: Role

    public init(tag: String, instruction: String, role: Role = .plain) {
        self.tag = tag
        self.instruction = instruction
        self.role = role
    }

    /// LLaVA-CoT's four stages (Xu et al. 2024, "LLaVA-CoT: Let Vision Language Models Reason Step-by-Step").
    public static let llavaCoT: [StageSpecification] = [
        StageSpecification(tag: "SUMMARY", instruction: "briefly say how you will answer the question."),
        StageSpecification(tag: "CAPTION", instruction: "describe what the image shows that matters for the question, using the visual evidence.",
                           role: .evidence),
        StageSpecification(tag: "REASONING", instruction: "reason step by step, one short sentence per step.", role: .steps),
        StageSpecification(tag: "CONCLUSION", instruction: "give the final answer in one sentence.", role: .answer),
    ]
}

/// How the best of several candidates is chosen.
public enum JudgeMode: String, Sendable {
    /// The language model compares two candidates with LLaVA-CoT's pairwise prompt; the verdict compares
    /// log p("1") and log p("2") as its answer.
    case pairwise
    /// Each candidate's mean log-probability per token under the model (no extra forward passes).
    case logLikelihood
}

/// Which image patches a reasoning step is said to rely on.
public enum PatchSelection: Sendable, Equatable {
    case off
    /// The k highest-scoring grid cells (their bounding box is what a look crops).
    case topK(Int)
    /// The smallest axis-aligned box of grid cells holding at least this fraction of the attribution mass.
    case box(mass: Float)
}

/// How cosine similarities between a step and the grid cells become a map that sums to 1.
public enum AttributionNormalization: Sendable, Equatable {
    /// softmax(similarity / temperature); nil temperature means 1 / the CLIP model's logit scale, the
    /// sharpness CLIP itself uses between images and texts.
    case softmax(temperature: Float?)
    /// (s - min) / (max - min), then divided by the sum; uniform when all cells are equal.
    case minMax
}

/// Where heatmap PNGs go.
public enum HeatmapOutput: Sendable, Equatable {
    case off
    /// PNG bytes attached to each attribution event.
    case inline
    /// Written as `step-<n>.png` in this directory (created if needed); the path is in the event.
    case directory(URL)
}

public struct ReasoningConfiguration: Sendable {
    public var stages: [StageSpecification] = StageSpecification.llavaCoT
    /// Candidates per generation unit (a stage, or a step of a `.steps` stage); 1 is plain decoding.
    public var beamWidth: Int = 1
    public var judge: JudgeMode = .pairwise
    /// The pairwise judge asks with both orders of the pair and sums the two verdicts, cancelling
    /// small models' bias for whichever answer comes first. Doubles the judge's cost.
    public var judgeBothOrders: Bool = true
    /// Candidates are forked from one prefilled cache of the shared prefix (false re-runs the prefix per
    /// candidate; only useful to measure what sharing saves).
    public var sharePrefix: Bool = true

    public var selection: PatchSelection = .box(mass: 0.5)
    public var normalization: AttributionNormalization = .softmax(temperature: nil)
    /// Crops re-encoded per run (0 disables looking again; attribution maps are still produced).
    public var maxLooks: Int = 2
    /// Steps per `.steps` stage.
    public var maxSteps: Int = 6

    public var labelBank: [String] = LabelBank.common
    /// Templates filled with each label to build the zero-shot classifier ("{}" is the label).
    public var labelTemplates: [String] = ["a photo of a {}."]
    /// Tags reported per region / crop.
    public var tagsPerRegion: Int = 3
    /// The image is also described as rows x columns equal crops (0 x 0 disables regions).
    public var regionGrid: (rows: Int, columns: Int) = (2, 2)

    /// Tokens each candidate may sample per stage; a step-by-step stage shares it among its steps.
    public var maxTokensPerStage: Int = 96
    /// 0 is greedy (candidates beyond the first then repeat it: use > 0 with beamWidth > 1).
    public var temperature: Float = 0.7
    public var topP: Float = 0.95
    public var repetitionPenalty: Float = 1.1
    public var seed: UInt64 = 0
    public var heatmaps: HeatmapOutput = .off
    /// Heatmap blending (0 = photo only, 1 = colour map only).
    public var heatmapAlpha: Float = 0.5

    /// Images whose long side exceeds this many times the short side are refused: the tower would see
    /// only a thin centre slice of them.
    public var maxAspectRatio: Double = 16

    public init() {}

    public static let maxBeamWidth = 8
    public static let maxLookCount = 16
    public static let maxStepCount = 64
    public static let maxLabelCount = 2000

    /// Throws `ReasoningError.invalidConfiguration` naming the first value out of range.
    public func validate() throws {
        func fail(_ message: String) -> ReasoningError { .invalidConfiguration(message) }
        guard !stages.isEmpty else { throw fail("no stages") }
        var seen = Set<String>()
        for stage in stages {
            guard !stage.tag.isEmpty, stage.tag.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) else {
                throw fail("stage tag '\(stage.tag)' must be letters, digits or underscores")
            }
            guard seen.insert(stage.tag.uppercased()).inserted else { throw fail("stage tag '\(stage.tag)' appears twice") }
        }
        guard stages.filter({ $0.role == .answer }).count <= 1 else { throw fail("more than one stage has the answer role") }
        guard (1...Self.maxBeamWidth).contains(beamWidth) else { throw fail("beamWidth \(beamWidth) is outside 1...\(Self.maxBeamWidth)") }
        switch selection {
        case .off: break
        case let .topK(k): guard k >= 1 else { throw fail("topK selection needs k >= 1, got \(k)") }
        case let .box(mass): guard mass > 0, mass <= 1 else { throw fail("box selection mass \(mass) is outside (0, 1]") }
        }
        if case let .softmax(temperature?) = normalization {
            guard temperature > 0, temperature.isFinite else { throw fail("attribution temperature \(temperature) must be positive") }
        }
        guard (0...Self.maxLookCount).contains(maxLooks) else { throw fail("maxLooks \(maxLooks) is outside 0...\(Self.maxLookCount)") }
        guard (1...Self.maxStepCount).contains(maxSteps) else { throw fail("maxSteps \(maxSteps) is outside 1...\(Self.maxStepCount)") }
        guard !labelBank.isEmpty, labelBank.count <= Self.maxLabelCount else {
            throw fail("label bank has \(labelBank.count) labels, expected 1...\(Self.maxLabelCount)")
        }
        guard Set(labelBank).count == labelBank.count, labelBank.allSatisfy({ !$0.trimmingCharacters(in: .whitespaces).isEmpty }) else {
            throw fail("label bank labels must be unique and non-empty")
        }
        guard !labelTemplates.isEmpty, labelTemplates.allSatisfy({ $0.contains("{}") }) else {
            throw fail("label templates must be non-empty and each contain {}")
        }
        guard (1...labelBank.count).contains(tagsPerRegion) else {
            throw fail("tagsPerRegion \(tagsPerRegion) is outside 1...\(labelBank.count) (the label bank size)")
        }
        let gridOff = regionGrid.rows == 0 && regionGrid.columns == 0
        guard gridOff || ((1...4).contains(regionGrid.rows) && (1...4).contains(regionGrid.columns)) else {
            throw fail("regionGrid \(regionGrid.rows)x\(regionGrid.columns) must be 0x0 or within 1...4 x 1...4")
        }
        guard (1...4096).contains(maxTokensPerStage) else { throw fail("maxTokensPerStage \(maxTokensPerStage) is outside 1...4096") }
        guard temperature >= 0, temperature.isFinite else { throw fail("temperature \(temperature) must be finite and >= 0") }
        guard topP > 0, topP <= 1 else { throw fail("topP \(topP) is outside (0, 1]") }
        guard repetitionPenalty > 0, repetitionPenalty.isFinite else { throw fail("repetitionPenalty \(repetitionPenalty) must be positive") }
        guard heatmapAlpha >= 0, heatmapAlpha <= 1 else { throw fail("heatmapAlpha \(heatmapAlpha) is outside [0, 1]") }
        guard maxAspectRatio >= 1 else { throw fail("maxAspectRatio \(maxAspectRatio) must be >= 1") }
    }
}
