import Foundation

/// Prompt templates for zero-shot classification ("{}" is replaced by the class name).
public enum PromptTemplates {
    /// The 18 CIFAR-10/100 templates from OpenAI CLIP's prompt list (data/prompts.md).
    public static let cifar: [String] = [
        "a photo of a {}.", "a blurry photo of a {}.", "a black and white photo of a {}.",
        "a low contrast photo of a {}.", "a high contrast photo of a {}.", "a bad photo of a {}.",
        "a good photo of a {}.", "a photo of a small {}.", "a photo of a big {}.",
        "a photo of the {}.", "a blurry photo of the {}.", "a black and white photo of the {}.",
        "a low contrast photo of the {}.", "a high contrast photo of the {}.", "a bad photo of the {}.",
        "a good photo of the {}.", "a photo of the small {}.", "a photo of the big {}.",
    ]

    /// Template bank by name: "cifar", "imagenet", or "simple" (the single "a photo of a {}.").
    public static func named(_ name: String) -> [String]? {
        switch name.lowercased() {
        case "cifar", "cifar10", "cifar-10", "cifar100": return cifar
        case "imagenet", "openai-imagenet": return imagenet
        case "simple", "photo": return ["a photo of a {}."]
        default: return nil
        }
    }

    /// Fills one template.
    public static func fill(_ template: String, with className: String) -> String {
        template.replacingOccurrences(of: "{}", with: className)
    }
}
