import Foundation
import VLMWire

/// One MCP tool: a daemon method under an MCP-style name, with a description for the model that
/// calls it. Its input and output schemas are not written here: they come from the method's params
/// and result in protocol/vlmd.schema.json (embedded at build time), so MCP and LSP framing share
/// one definition.
struct ToolDefinition: Sendable {
    let name: String
    let method: String
    let title: String
    let description: String
    /// MCP structured content must be an object: an array result is wrapped under this key.
    var wrapKey: String? = nil
}

/// The daemon methods offered as MCP tools. A method missing from the schema (not yet landed) is
/// left out of `tools/list`, so a row here can precede its method.
let toolTable: [ToolDefinition] = [
    ToolDefinition(
        name: "list_models", method: ModelsListRequest.method, title: "List loaded models",
        description: "Lists the models vlmd has resident (id, kind, path, memory). Load one with load_model first.",
        wrapKey: "models"),
    ToolDefinition(
        name: "load_model", method: ModelsLoadRequest.method, title: "Load a model",
        description: "Loads a model into vlmd's memory: kind 'clip' (an open_clip directory with open_clip_config.json and open_clip_model.safetensors), 'gguf' (a language model file) or 'mmproj' (a LLaVA vision projector). Other tools then name it by its id (default: the directory or file name). Paths are on the machine vlmd runs on."),
    ToolDefinition(
        name: "unload_model", method: ModelsUnloadRequest.method, title: "Unload a model",
        description: "Frees a loaded model by id."),
    ToolDefinition(
        name: "encode_image", method: EncodeImageRequest.method, title: "CLIP image embeddings",
        description: "Encodes images (file paths, base64 PNG, or an imageId from an earlier reply) into L2-normalised CLIP embeddings with a loaded CLIP model. Returns one embedding per image and an imageId for reuse."),
    ToolDefinition(
        name: "classify", method: ClassifyRequest.method, title: "Zero-shot classification",
        description: "Zero-shot classifies images over the given labels with a loaded CLIP model (softmax over prompt-template similarities). Returns per-image probabilities in label order and the top labels."),
    ToolDefinition(
        name: "encode_text", method: EncodeTextRequest.method, title: "CLIP text embeddings",
        description: "Encodes texts into L2-normalised CLIP text embeddings with a loaded CLIP model, optionally averaged over prompt templates (as classify does for its labels)."),
    ToolDefinition(
        name: "attribute", method: AttributeRequest.method, title: "Patch attribution",
        description: "Shows which parts of an image match each text, with a loaded CLIP model: per text, an attribution map over the image's patch grid, the selected cells or box, and (with heatmapsInline) a heatmap image."),
    ToolDefinition(
        name: "generate_with_visual_selection", method: VisualReasoningRequest.method,
        title: "Staged visual reasoning",
        description: "Answers a question about an image with a loaded language model, reasoning in stages and attributing each step to image regions (optionally looking again at the selected region). Needs a loaded gguf model and a CLIP (or mmproj) model. Returns the answer, the stages, the steps with their attributions and, with heatmapsInline, heatmap images."),
]

/// The tools of `toolTable` whose methods the embedded schema defines, with their schemas.
struct ToolCatalog: Sendable {
    struct Tool: Sendable {
        let definition: ToolDefinition
        let inputSchema: JSONValue
        let outputSchema: JSONValue
    }

    let tools: [Tool]

    init(schema: JSONValue, table: [ToolDefinition] = toolTable) {
        let resolver = SchemaResolver(definitions: schema["$defs"]?.objectValue ?? [:])
        tools = table.compactMap { definition in
            guard let method = schema["methods"]?[definition.method] else { return nil }
            return Tool(
                definition: definition,
                inputSchema: resolver.toolInput(method["params"] ?? .object([:])),
                outputSchema: resolver.toolOutput(method["result"] ?? .object([:]), wrapKey: definition.wrapKey))
        }
    }

    /// The protocol schema compiled into vlmd.
    static let embedded: ToolCatalog = {
        let data = Data(PackageResources.vlmd_schema_json)
        let schema = (try? JSONParser.parse(data, maxDepth: 256).value) ?? .null
        return ToolCatalog(schema: schema)
    }()

    func tool(named name: String) -> Tool? { tools.first { $0.definition.name == name } }

    /// The `tools/list` entries. `outputSchema` and `title` exist from MCP 2025-06-18 on.
    func listing(structured: Bool) -> JSONValue {
        .array(tools.map { tool in
            var entry: [String: JSONValue] = [
                "name": .string(tool.definition.name),
                "description": .string(tool.definition.description),
                "inputSchema": tool.inputSchema,
            ]
            if structured {
                entry["title"] = .string(tool.definition.title)
                entry["outputSchema"] = tool.outputSchema
            }
            return .object(entry)
        })
    }
}

/// Turns the protocol schema's method definitions into self-contained MCP tool schemas: every
/// `$ref` inlined (MCP clients pass schemas to models and validators that may not follow
/// references), the LSP streaming tokens dropped (the adapter sets them itself) and the root
/// made an object, as MCP requires.
struct SchemaResolver {
    let definitions: [String: JSONValue]
    static let streamingTokens = JSONValue.object(["$ref": .string("#/$defs/StreamingTokens")])

    func toolInput(_ params: JSONValue) -> JSONValue {
        guard case .object(var root) = inline(params) else { return .object(["type": "object"]) }
        root["type"] = "object"  // "models/list" takes an object or null; a tool's arguments are an object
        root["$schema"] = nil
        if root["properties"] == nil { root["properties"] = .object([:]) }
        return .object(root)
    }

    func toolOutput(_ result: JSONValue, wrapKey: String?) -> JSONValue {
        let resolved = inline(result)
        guard let wrapKey else { return resolved }
        return ["type": "object", "required": [.string(wrapKey)], "properties": .object([wrapKey: resolved])]
    }

    private func inline(_ value: JSONValue, depth: Int = 0) -> JSONValue {
        switch value {
        case .array(let items):
            return .array(items.map { inline($0, depth: depth) })
        case .object(var fields):
            if case .array(let parts)? = fields["allOf"] {
                let kept = parts.filter { $0 != Self.streamingTokens }
                fields["allOf"] = kept.isEmpty ? nil : .array(kept)
            }
            if let reference = fields["$ref"]?.stringValue, depth < 32,
               let name = reference.split(separator: "/").last, case .object(let target)? = definitions[String(name)] {
                fields["$ref"] = nil
                fields.merge(target) { own, _ in own }
                return inline(.object(fields), depth: depth + 1)
            }
            return .object(fields.mapValues { inline($0, depth: depth) })
        default:
            return value
        }
    }
}
