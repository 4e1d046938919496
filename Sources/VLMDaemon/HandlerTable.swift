import Foundation
import VLMWire

/// A request handler after type erasure: raw params in, an encoded JSON result out.
typealias ErasedHandler = @Sendable (JSONValue?, RequestContext) async throws -> Data

/// The methods the daemon serves. Each feature registers its handlers with typed params and
/// results; decoding errors become -32602 naming the field.
public struct HandlerTable: Sendable {
    private(set) var handlers: [String: ErasedHandler] = [:]

    public init() {}

    public var methods: [String] { handlers.keys.sorted() }

    public mutating func register<Params: Decodable & Sendable, Result: Encodable & Sendable>(
        _ method: String, _ body: @escaping @Sendable (Params, RequestContext) async throws -> Result
    ) {
        handlers[method] = { raw, context in
            let params = try decodeParams(Params.self, from: raw)
            let result = try await body(params, context)
            do { return try JSONCoding.encode(result) } catch {
                throw RPCError.internalError("could not encode the result of '\(method)': \(error)")
            }
        }
    }

    func handler(for method: String) -> ErasedHandler? { handlers[method] }
}

/// Used where a method takes no params (absent, null or `{}` are all accepted).
public struct NoParams: Decodable, Sendable {}

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
