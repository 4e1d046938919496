import Foundation
import VLMWire

/// Limits and settings fixed at start-up (flags of `vlmd`), some adjustable by `initialize`.
public struct DaemonConfiguration: Sendable {
    public var maxMessageBytes = 64 << 20
    public var maxImagePixels = 64 << 20
    public var memoryBudgetBytes = 8 << 30
    public var imageCacheBytes = 512 << 20
    /// Deepest nesting accepted in a message body (arrays and objects).
    public var maxJSONDepth = JSONParser.defaultMaxDepth
    public var threads = max(1, ProcessInfo.processInfo.activeProcessorCount)
    /// Where `optimise-prompt` saves learned prompts and `classify` finds them by name.
    public var promptsDirectory: URL = {
        if let dir = ProcessInfo.processInfo.environment["VLMD_PROMPTS_DIR"] { return URL(fileURLWithPath: dir) }
        let cache = ProcessInfo.processInfo.environment["XDG_CACHE_HOME"].map { URL(fileURLWithPath: $0) }
            ?? FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache")
        return cache.appendingPathComponent("vlmd/prompts")
    }()
    /// Lowest level written to stderr.
    public var stderrLogLevel: LogLevel = .info
    /// Minimum interval between two `$/progress` reports of one token (begin and end always go out).
    public var progressInterval: Duration = .milliseconds(50)

    public init() {}
}

public enum LogLevel: Int, Comparable, Sendable, CaseIterable {
    case debug = 0, info, warning, error, off

    public init?(name: String) {
        switch name.lowercased() {
        case "debug", "log", "verbose": self = .debug
        case "info": self = .info
        case "warning", "warn": self = .warning
        case "error": self = .error
        case "off", "none": self = .off
        default: return nil
        }
    }

    public static func < (a: LogLevel, b: LogLevel) -> Bool { a.rawValue < b.rawValue }

    /// LSP's MessageType for `window/logMessage`.
    var lspMessageType: Int {
        switch self {
        case .error, .off: return 1
        case .warning: return 2
        case .info: return 3
        case .debug: return 4
        }
    }
}
