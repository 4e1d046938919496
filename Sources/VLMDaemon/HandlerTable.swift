import Foundation
import VLMWire

/// A request handler after type erasure: raw params in, an encoded JSON result out.
typealias ErasedHandler = @Sendable (JSONValue?, RequestContext) async throws -> Data

/// The methods the daemon serves. Each feature registers its handlers by request type (VLMWire's
/// `RequestType`, e.g. `EncodeImageRequest`), which fixes the method name and the params and result
/// types; decoding errors become -32602 naming the field.
public struct HandlerTable: Sendable {
    private var handlers: [String: ErasedHandler] = [:]
    /// The request type behind each method, for the tests that hold the schema to the Swift types.
    private(set) var requestTypes: [String: any RequestType.Type] = [:]

    public init() {}

    public var methods: [String] { handlers.keys.sorted() }

    public mutating func register<Request: RequestType>(
        _ request: Request.Type, _ body: @escaping @Sendable (Request.Params, RequestContext) async throws -> Request.Result
    ) {
        let method = Request.method
        requestTypes[method] = request
        handlers[method] = { raw, context in
            let params = try decodeParams(Request.Params.self, from: raw)
            let result = try await body(params, context)
            do { return try JSONCoding.encode(result) } catch {
                throw RPCError.internalError("could not encode the result of '\(method)': \(error)")
            }
        }
    }

    func handler(for method: String) -> ErasedHandler? { handlers[method] }
}

func decodeParams<Params: Decodable>(_ type: Params.Type, from raw: JSONValue?) throws -> Params {
    var value = raw ?? .object([:])
    if value == .null { value = .object([:]) }
    if case .array = value {
        throw RPCError.invalidParams("params: expected an object (by-name params), got an array")
    }
    do { return try JSONCoding.convert(value, to: type) } catch {
        throw RPCError.invalidParams(describe(error))
    }
}
