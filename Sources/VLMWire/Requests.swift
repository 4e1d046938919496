/// A request vlmd answers, as one type: the method name and the types of its params, result and
/// (when it streams) partial results. Each family's file declares its requests beside their params
/// (`PingRequest` in Lifecycle.swift, `EncodeImageRequest` in CLIP.swift, ...). The daemon registers
/// its handlers by these types and clients (`vlm`, the Swift tests) build their requests from them,
/// so both ends share one definition; protocol/vlmd.schema.json describes the same shapes and
/// SchemaContractTests keeps it in step with them.
public protocol RequestType: Sendable {
    associatedtype Params: Codable & Sendable
    associatedtype Result: Codable & Sendable
    static var method: String { get }
}

/// A request that streams partial results (`$/progress` on its `partialResultToken`) before its result.
public protocol StreamingRequestType: RequestType {
    associatedtype Partial: Codable & Sendable
}

/// The params of a method that takes none: absent, null and `{}` are all accepted; sent as `{}`.
public struct NoParams: Codable, Sendable {
    public init() {}
    public init(from decoder: any Decoder) throws {}
    public func encode(to encoder: any Encoder) throws {
        _ = encoder.container(keyedBy: NoKeys.self)
    }
    private enum NoKeys: CodingKey {}
}

/// The result of a method that answers `null`.
public struct NullResult: Codable, Sendable {
    public init() {}
    public init(from decoder: any Decoder) throws {
        guard try decoder.singleValueContainer().decodeNil() else {
            throw DecodingError.typeMismatch(NullResult.self, .init(codingPath: decoder.codingPath, debugDescription: "expected null"))
        }
    }
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encodeNil()
    }
}
