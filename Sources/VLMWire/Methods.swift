/// Every method name vlmd knows, in one place. protocol/vlmd.schema.json lists the same names;
/// a test keeps the two in step.
public enum Method {
    // Lifecycle (LSP)
    public static let initialize = "initialize"
    public static let initialized = "initialized"
    public static let shutdown = "shutdown"
    public static let exit = "exit"
    public static let cancelRequest = "$/cancelRequest"
    public static let setTrace = "$/setTrace"

    // Server -> client notifications (LSP)
    public static let progress = "$/progress"
    public static let logMessage = "window/logMessage"
    public static let logTrace = "$/logTrace"

    // Daemon
    public static let ping = "ping"
    public static let status = "daemon/status"
    /// Ends the whole daemon (all connections), e.g. one started by `vlm daemon start`.
    public static let stop = "daemon/stop"
    public static let debugStream = "debug/stream"

    // Models
    public static let modelsLoad = "models/load"
    public static let modelsUnload = "models/unload"
    public static let modelsList = "models/list"

    // Capabilities (reserved now; the model issues implement them)
    public static let encodeImage = "encode-image"
    public static let encodeText = "encode-text"
    public static let attribute = "attribute"
    public static let classify = "classify"
    public static let evaluateDataset = "dataset/evaluate"
    public static let optimisePrompt = "optimise-prompt"
    public static let generateWithVisualSelection = "generate-with-visual-selection"
    public static let generate = "generate"
    public static let tokenize = "tokenize"
    public static let detokenize = "detokenize"
    public static let score = "score"

    /// The reserved capability names, advertised in `initialize` with whether this build serves them.
    public static let capabilities = [
        encodeImage, encodeText, attribute, classify, evaluateDataset, optimisePrompt, generateWithVisualSelection,
        generate, tokenize, detokenize, score,
    ]
}
