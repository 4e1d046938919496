import Foundation

/// A JSON-RPC error object. Handlers throw these; anything else they throw becomes -32603.
public struct RPCError: Error, Sendable, Codable, Equatable {
    public var code: Int
    public var message: String
    public var data: JSONValue?

    public init(code: Int, message: String, data: JSONValue? = nil) {
        self.code = code
        self.message = message
        self.data = data
    }
}

/// Error codes. The JSON-RPC and LSP ones first, then vlmd's application codes (-32000 ... -32099).
/// protocol/errors.md documents each; the schema test checks that every code sent is listed there.
public enum ErrorCode {
    public static let parseError = -32700
    public static let invalidRequest = -32600
    public static let methodNotFound = -32601
    public static let invalidParams = -32602
    public static let internalError = -32603
    public static let serverNotInitialized = -32002
    public static let requestCancelled = -32800

    public static let modelNotLoaded = -32001
    public static let modelLoadFailed = -32003
    public static let imageUnreadable = -32004
    public static let memoryBudgetExceeded = -32005
    public static let inputTooLarge = -32006
    public static let datasetUnreadable = -32007
    public static let contextOverflow = -32008
}

extension RPCError {
    public static func parseError(_ message: String) -> RPCError { RPCError(code: ErrorCode.parseError, message: message) }
    public static func invalidRequest(_ message: String) -> RPCError { RPCError(code: ErrorCode.invalidRequest, message: message) }
    public static func invalidParams(_ message: String) -> RPCError { RPCError(code: ErrorCode.invalidParams, message: message) }
    public static func internalError(_ message: String) -> RPCError { RPCError(code: ErrorCode.internalError, message: message) }
    public static func methodNotFound(_ method: String) -> RPCError {
        RPCError(code: ErrorCode.methodNotFound, message: "unknown method '\(method)'")
    }
    public static var cancelled: RPCError { RPCError(code: ErrorCode.requestCancelled, message: "request cancelled") }
    public static var notInitialized: RPCError {
        RPCError(code: ErrorCode.serverNotInitialized, message: "server not initialized: send 'initialize' first")
    }
}
