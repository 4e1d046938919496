/// Wire types for the lifecycle, the daemon's own methods and the LSP notifications vlmd sends.
/// Field names follow LSP where LSP has the concept.

public struct ClientInfo: Codable, Sendable {
    public var name: String
    public var version: String?

    public init(name: String, version: String? = nil) { self.name = name; self.version = version }
}

public struct InitializeParams: Codable, Sendable {
    public var processId: Int?
    public var clientInfo: ClientInfo?
    public var capabilities: JSONValue?
    public var trace: String?
    public var initializationOptions: InitializationOptions?

    public init(processId: Int? = nil, clientInfo: ClientInfo? = nil, capabilities: JSONValue? = nil, trace: String? = nil, initializationOptions: InitializationOptions? = nil) { self.processId = processId; self.clientInfo = clientInfo; self.capabilities = capabilities; self.trace = trace; self.initializationOptions = initializationOptions }
}

/// vlmd-specific options a client may set at start-up.
public struct InitializationOptions: Codable, Sendable {
    /// Send log lines at or above this level as `window/logMessage` ("error", "warning", "info", "debug").
    public var logLevel: String?
    /// Compute threads for the tensor core (OpenBLAS and vlmd's own kernels).
    public var threads: Int?

    public init(logLevel: String? = nil, threads: Int? = nil) { self.logLevel = logLevel; self.threads = threads }
}

public struct ServerInfo: Codable, Sendable {
    public var name: String
    public var version: String

    public init(name: String, version: String) { self.name = name; self.version = version }
}

public struct Limits: Codable, Sendable {
    public var maxMessageBytes: Int
    public var maxImagePixels: Int
    public var memoryBudgetBytes: Int
    public var threads: Int
    /// Deepest nesting of arrays and objects accepted in a message; deeper ones get -32600.
    public var maxJSONDepth: Int

    public init(maxMessageBytes: Int, maxImagePixels: Int, memoryBudgetBytes: Int, threads: Int, maxJSONDepth: Int = JSONParser.defaultMaxDepth) {
        self.maxMessageBytes = maxMessageBytes; self.maxImagePixels = maxImagePixels; self.memoryBudgetBytes = memoryBudgetBytes
        self.threads = threads; self.maxJSONDepth = maxJSONDepth
    }
}

public struct ExperimentalCapabilities: Codable, Sendable {
    public var protocolVersion: String
    public var limits: Limits
    /// Every method this build answers.
    public var methods: [String]
    /// Model kinds `models/load` accepts, e.g. "clip" (open_clip directory), "gguf" (language model).
    public var modelKinds: [String]
    /// The `precision` values image encoding accepts on this CPU: "fp32", and "bf16" where it has AVX-512 BF16.
    public var imagePrecisions: [String]?

    public init(protocolVersion: String, limits: Limits, methods: [String], modelKinds: [String], imagePrecisions: [String]? = nil) {
        self.protocolVersion = protocolVersion; self.limits = limits; self.methods = methods; self.modelKinds = modelKinds
        self.imagePrecisions = imagePrecisions
    }
}

public struct ServerCapabilities: Codable, Sendable {
    public var experimental: ExperimentalCapabilities

    public init(experimental: ExperimentalCapabilities) { self.experimental = experimental }
}

public struct InitializeResult: Codable, Sendable {
    public var capabilities: ServerCapabilities
    public var serverInfo: ServerInfo

    public init(capabilities: ServerCapabilities, serverInfo: ServerInfo) { self.capabilities = capabilities; self.serverInfo = serverInfo }
}

public struct SetTraceParams: Codable, Sendable {
    public var value: String

    public init(value: String) { self.value = value }
}

public struct CancelParams: Codable, Sendable {
    public var id: RequestID

    public init(id: RequestID) { self.id = id }
}

/// `ping`: answers at once, or after `delayMs` (cancellable), echoing `echo`.
public struct PingParams: Codable, Sendable {
    public var delayMs: Int?
    public var echo: JSONValue?

    public init(delayMs: Int? = nil, echo: JSONValue? = nil) { self.delayMs = delayMs; self.echo = echo }
}

public struct PingResult: Codable, Sendable {
    public var pong: Bool
    public var echo: JSONValue?

    public init(pong: Bool, echo: JSONValue? = nil) { self.pong = pong; self.echo = echo }
}

/// `debug/stream`: counts to `count`, one partial result and one progress report per step,
/// `intervalMs` apart. Lets clients exercise streaming, progress and cancellation without a model.
public struct DebugStreamParams: Codable, Sendable {
    public var count: Int
    public var intervalMs: Int?
    public var workDoneToken: RequestID?
    public var partialResultToken: RequestID?

    public init(count: Int, intervalMs: Int? = nil, workDoneToken: RequestID? = nil, partialResultToken: RequestID? = nil) { self.count = count; self.intervalMs = intervalMs; self.workDoneToken = workDoneToken; self.partialResultToken = partialResultToken }
}

public struct DebugStreamPartial: Codable, Sendable {
    public var index: Int

    public init(index: Int) { self.index = index }
}

public struct DebugStreamResult: Codable, Sendable {
    public var count: Int

    public init(count: Int) { self.count = count }
}

public struct StatusResult: Codable, Sendable {
    public var uptimeSeconds: Double
    public var requestsInFlight: Int
    public var inFlight: [InFlightRequest]
    public var models: [ModelInfo]
    public var memory: MemoryStatus
    public var caches: [CacheStatus]
    /// stderr log lines dropped because stderr was closed or not being read.
    public var logLinesDropped: Int
    /// Models loaded since the daemon started (a models/load answered `alreadyLoaded` does not count).
    public var modelLoads: Int
    /// Clients connected now (1 on stdio).
    public var connections: Int

    public init(uptimeSeconds: Double, requestsInFlight: Int, inFlight: [InFlightRequest], models: [ModelInfo], memory: MemoryStatus, caches: [CacheStatus], logLinesDropped: Int = 0, modelLoads: Int = 0, connections: Int = 1) {
        self.uptimeSeconds = uptimeSeconds; self.requestsInFlight = requestsInFlight; self.inFlight = inFlight; self.models = models
        self.memory = memory; self.caches = caches; self.logLinesDropped = logLinesDropped
        self.modelLoads = modelLoads; self.connections = connections
    }
}

public struct InFlightRequest: Codable, Sendable {
    public var id: RequestID
    public var method: String
    public var runningSeconds: Double

    public init(id: RequestID, method: String, runningSeconds: Double) { self.id = id; self.method = method; self.runningSeconds = runningSeconds }
}

public struct MemoryStatus: Codable, Sendable {
    public var modelBytes: Int
    /// Bytes reserved for the generation (KV) caches of requests under way, under the same budget.
    public var generationBytes: Int
    public var budgetBytes: Int
    public var residentBytes: Int?

    public init(modelBytes: Int, generationBytes: Int = 0, budgetBytes: Int, residentBytes: Int? = nil) {
        self.modelBytes = modelBytes; self.generationBytes = generationBytes; self.budgetBytes = budgetBytes; self.residentBytes = residentBytes
    }
}

public struct CacheStatus: Codable, Sendable {
    public var name: String
    public var entries: Int
    public var bytes: Int
    public var budgetBytes: Int
    public var hits: Int
    public var misses: Int
    public var evictions: Int

    public init(name: String, entries: Int, bytes: Int, budgetBytes: Int, hits: Int, misses: Int, evictions: Int) {
        self.name = name; self.entries = entries; self.bytes = bytes; self.budgetBytes = budgetBytes
        self.hits = hits; self.misses = misses; self.evictions = evictions
    }
}

public struct ModelInfo: Codable, Sendable {
    public var id: String
    public var kind: String
    public var path: String
    public var memoryBytes: Int
    public var details: JSONValue?
    /// Set (true) by models/load when the model was resident already and was not loaded again.
    public var alreadyLoaded: Bool?

    public init(id: String, kind: String, path: String, memoryBytes: Int, details: JSONValue? = nil, alreadyLoaded: Bool? = nil) {
        self.id = id; self.kind = kind; self.path = path; self.memoryBytes = memoryBytes; self.details = details
        self.alreadyLoaded = alreadyLoaded
    }
}

// MARK: Notifications the server sends

/// LSP `$/progress`: `value` is a WorkDoneProgress begin/report/end, or a partial result.
public struct ProgressParams<Value: Encodable & Sendable>: Encodable, Sendable {
    public var token: RequestID
    public var value: Value
    public init(token: RequestID, value: Value) { self.token = token; self.value = value }
}

public struct WorkDoneProgress: Codable, Sendable {
    public var kind: String  // "begin" | "report" | "end"
    public var title: String?
    public var message: String?
    public var percentage: Int?
    public var cancellable: Bool?

    public init(kind: String, title: String? = nil, message: String? = nil, percentage: Int? = nil, cancellable: Bool? = nil) {
        self.kind = kind; self.title = title; self.message = message; self.percentage = percentage; self.cancellable = cancellable
    }
}

public struct LogMessageParams: Codable, Sendable {
    /// LSP MessageType: 1 error, 2 warning, 3 info, 4 log (debug).
    public var type: Int
    public var message: String
    public init(type: Int, message: String) { self.type = type; self.message = message }
}

public struct LogTraceParams: Codable, Sendable {
    public var message: String
    public var verbose: String?
    public init(message: String, verbose: String? = nil) { self.message = message; self.verbose = verbose }
}

/// Fields every long-running request may carry (LSP's WorkDoneProgressParams and PartialResultParams).
public struct StreamingTokens: Codable, Sendable {
    public var workDoneToken: RequestID?
    public var partialResultToken: RequestID?

    public init(workDoneToken: RequestID? = nil, partialResultToken: RequestID? = nil) { self.workDoneToken = workDoneToken; self.partialResultToken = partialResultToken }
}

// MARK: Requests

/// `initialize` and `shutdown` are answered by the daemon itself, in order, not through its handler table.
public enum InitializeRequest: RequestType {
    public static let method = "initialize"
    public typealias Params = InitializeParams
    public typealias Result = InitializeResult
}

public enum ShutdownRequest: RequestType {
    public static let method = "shutdown"
    public typealias Params = NoParams
    public typealias Result = NullResult
}

/// Answers at once, or after `delayMs` (cancellable), echoing `echo`.
public enum PingRequest: RequestType {
    public static let method = "ping"
    public typealias Params = PingParams
    public typealias Result = PingResult
}

public enum StatusRequest: RequestType {
    public static let method = "daemon/status"
    public typealias Params = NoParams
    public typealias Result = StatusResult
}

/// Ends the whole daemon (all connections), e.g. one started by `vlm daemon start`.
public enum StopRequest: RequestType {
    public static let method = "daemon/stop"
    public typealias Params = NoParams
    public typealias Result = NullResult
}

public enum DebugStreamRequest: StreamingRequestType {
    public static let method = "debug/stream"
    public typealias Params = DebugStreamParams
    public typealias Result = DebugStreamResult
    public typealias Partial = DebugStreamPartial
}
