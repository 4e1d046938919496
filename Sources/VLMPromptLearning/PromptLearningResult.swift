public struct PromptLearningResult: Sendable {}
