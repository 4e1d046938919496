import VLMCLIP
import VLMImage
import VLMTensor
import VLMWire

// JSON-RPC codes for the model modules' errors. The model modules know nothing of JSON-RPC; the
// mapping lives here, beside the handlers that call them.

extension ImageError: RPCErrorConvertible {
    public var rpcError: RPCError {
        switch self {
        case .invalidPNG, .io, .encodingFailed: return RPCError(code: ErrorCode.imageUnreadable, message: description)
        case .tooLarge: return RPCError(code: ErrorCode.inputTooLarge, message: description)
        case .invalidDataset: return RPCError(code: ErrorCode.datasetUnreadable, message: description)
        case .invalidArgument: return RPCError.invalidParams(description)
        }
    }
}

extension CLIPError: RPCErrorConvertible {
    public var rpcError: RPCError {
        switch self {
        case .invalidConfig, .unsupportedArchitecture: return RPCError(code: ErrorCode.modelLoadFailed, message: description)
        case .invalidInput: return RPCError.invalidParams(description)
        }
    }
}

/// Cancellation, from every engine, is -32800; what the computation produced before it stopped
/// (its `partial`, already in wire form by the handler) rides along as the error's data.
extension ComputeCancelled: RPCErrorConvertible {
    public var rpcError: RPCError {
        guard let partial = partial as? any Encodable else { return .cancelled }
        return RPCError(code: ErrorCode.requestCancelled, message: RPCError.cancelled.message,
                        data: (try? JSONCoding.value(of: partial)) ?? .null)
    }
}

extension SafeFileWriter.Failure: RPCErrorConvertible {
    public var rpcError: RPCError { RPCError.invalidParams("cannot write \(description)") }
}

extension SafeTensorsError: RPCErrorConvertible {
    public var rpcError: RPCError { RPCError(code: ErrorCode.modelLoadFailed, message: description) }
}
