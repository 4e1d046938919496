import Foundation
import VLMWire

/// MCP `tools/call` results built from the daemon's replies: a readable summary, the result as
/// JSON text (for clients without structured output) and as `structuredContent`, and every PNG the
/// result carries (heatmaps) as `image` content.
enum ToolResult {
    static func success(_ tool: ToolDefinition, _ result: JSONValue, structured: Bool) -> JSONValue {
        let payload = tool.wrapKey.map { JSONValue.object([$0: result]) } ?? result
        var images: [String] = []
        let withoutImages = extractingPNGs(payload, into: &images)
        var content: [JSONValue] = [text(summary(tool.method, result)), text(jsonText(withoutImages))]
        content += images.map { ["type": "image", "data": .string($0), "mimeType": "image/png"] }
        var reply: [String: JSONValue] = ["content": .array(content), "isError": false]
        if structured { reply["structuredContent"] = payload }
        return .object(reply)
    }

    /// A tool that failed is a result with `isError` (MCP: the model should see why and may retry),
    /// carrying the daemon's error code and message (which names the offending field or file).
    static func failure(_ error: RPCError) -> JSONValue {
        var message = "vlmd error \(error.code): \(error.message)"
        if let data = error.data, data != .null { message += "\n" + jsonText(data) }
        return ["content": [text(message)], "isError": true]
    }

    /// The human-readable line of a work-done progress value.
    static func progressMessage(_ value: JSONValue) -> String? {
        let words = [value["title"]?.stringValue, value["message"]?.stringValue].compactMap { $0 }
        let percent = value["kind"]?.stringValue == "begin" ? nil : value["percentage"]?.intValue.map { "\($0)%" }
        let line = ([percent].compactMap { $0 } + words).joined(separator: " ")
        return line.isEmpty ? (value["kind"]?.stringValue == "end" ? "done" : nil) : line
    }

    private static func text(_ string: String) -> JSONValue { ["type": "text", "text": .string(string)] }

    private static func jsonText(_ value: JSONValue) -> String {
        (try? JSONCoding.encode(value)).flatMap { String(data: $0, encoding: .utf8) } ?? "null"
    }

    /// Moves the base64 PNGs of a result (fields whose name ends in "PNG", such as `heatmapPNG`)
    /// into `images`, leaving a pointer to the image content in the JSON text.
    private static func extractingPNGs(_ value: JSONValue, into images: inout [String]) -> JSONValue {
        switch value {
        case .object(let fields):
            var out: [String: JSONValue] = [:]
            for (key, field) in fields {
                if key.hasSuffix("PNG"), let png = field.stringValue {
                    images.append(png)
                    out[key] = .string("(image content \(images.count))")
                } else {
                    out[key] = extractingPNGs(field, into: &images)
                }
            }
            return .object(out)
        case .array(let items):
            return .array(items.map { extractingPNGs($0, into: &images) })
        default:
            return value
        }
    }

    // MARK: summaries

    private static func summary(_ method: String, _ result: JSONValue) -> String {
        switch method {
        case ModelsListRequest.method: return modelsSummary(result.arrayValue ?? [])
        case ModelsLoadRequest.method: return "Loaded \(modelLine(result))."
        case ModelsUnloadRequest.method:
            return "Unloaded \(result["id"]?.stringValue ?? "the model") (freed \(mebibytes(result["freedBytes"])))."
        case EncodeImageRequest.method: return encodeSummary(result)
        case ClassifyRequest.method: return classifySummary(result)
        case VisualReasoningRequest.method: return reasoningSummary(result)
        case "attribute": return attributeSummary(result)
        default: return "\(method) finished; the result is below as JSON."
        }
    }

    private static func modelsSummary(_ models: [JSONValue]) -> String {
        guard !models.isEmpty else { return "No models are loaded; load one with load_model." }
        return (["\(models.count) model(s) loaded:"] + models.map { "- " + modelLine($0) }).joined(separator: "\n")
    }

    private static func modelLine(_ model: JSONValue) -> String {
        let id = model["id"]?.stringValue ?? "?"
        let kind = model["kind"]?.stringValue ?? "?"
        return "\(id) (\(kind), \(mebibytes(model["memoryBytes"])), \(model["path"]?.stringValue ?? ""))"
    }

    private static func mebibytes(_ bytes: JSONValue?) -> String {
        String(format: "%.1f MiB", (bytes?.doubleValue ?? 0) / 1_048_576)
    }

    private static func encodeSummary(_ result: JSONValue) -> String {
        let images = result["images"]?.arrayValue ?? []
        let lines = images.map { image -> String in
            let size = "\(image["width"]?.intValue ?? 0)x\(image["height"]?.intValue ?? 0)"
            let dimensions = image["embedding"]?.arrayValue?.count ?? 0
            let cached = image["cached"] == .bool(true) ? ", cached" : ""
            return "- image \(image["index"]?.intValue ?? 0): \(image["imageId"]?.stringValue ?? "") (\(size)), \(dimensions)-d embedding\(cached)"
        }
        return (["Encoded \(images.count) image(s) with \(result["model"]?.stringValue ?? "CLIP"):"] + lines).joined(separator: "\n")
    }

    private static func classifySummary(_ result: JSONValue) -> String {
        let classifications = result["results"]?.arrayValue ?? []
        let lines = classifications.map { item -> String in
            let top = (item["top"]?.arrayValue ?? []).map { score in
                let probability = score["prob"]?.doubleValue ?? 0
                return "\(score["label"]?.stringValue ?? "?") \(String(format: "%.3f", probability))"
            }
            return "- image \(item["index"]?.intValue ?? 0): " + top.joined(separator: ", ")
        }
        return (["Classified \(classifications.count) image(s) with \(result["model"]?.stringValue ?? "CLIP"):"] + lines)
            .joined(separator: "\n")
    }

    private static func attributeSummary(_ result: JSONValue) -> String {
        let grid = "\(result["gridHeight"]?.intValue ?? 0)x\(result["gridWidth"]?.intValue ?? 0)"
        let lines = (result["attributions"]?.arrayValue ?? []).map { attribution -> String in
            var line = "- \"\(attribution["text"]?.stringValue ?? "")\""
            if let box = attribution["selection"]?["pixelBox"] {
                let mass = attribution["selection"]?["mass"]?.doubleValue ?? 0
                line += ": selected x=\(box["x"]?.intValue ?? 0) y=\(box["y"]?.intValue ?? 0) "
                    + "\(box["width"]?.intValue ?? 0)x\(box["height"]?.intValue ?? 0), \(Int((mass * 100).rounded()))% of the map"
            }
            return line
        }
        return (["Attributed \(lines.count) text(s) over a \(grid) patch grid with \(result["clip"]?.stringValue ?? "CLIP"):"] + lines)
            .joined(separator: "\n")
    }

    private static func reasoningSummary(_ result: JSONValue) -> String {
        let outcome = result["outcome"]?.stringValue ?? "completed"
        let steps = result["steps"]?.arrayValue ?? []
        let attributed = steps.filter { $0["attribution"] != nil }.count
        var lines = ["Answer: \(result["answer"]?.stringValue ?? "")",
                     "(\(outcome); \(steps.count) step(s), \(attributed) attributed to image regions)"]
        if let failure = result["failure"]?.stringValue { lines.append("Failure: \(failure)") }
        return lines.joined(separator: "\n")
    }
}
