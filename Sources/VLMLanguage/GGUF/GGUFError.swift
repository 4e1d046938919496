// Everything that can be wrong with a GGUF file, each case naming the part of the file at fault.
import VLMTensor

public enum GGUFError: Error, CustomStringConvertible, Equatable {
    case cannotOpen(path: String, reason: String)
    case notGGUF(path: String)
    case unsupportedVersion(UInt32)
    case truncated(what: String, path: String)
    case countTooLarge(what: String, count: UInt64, limit: UInt64)
    case invalidValueType(key: String, type: UInt32)
    case nestingTooDeep(key: String)
    case invalidUTF8(what: String)
    case duplicateKey(String)
    case duplicateTensor(String)
    case badAlignment(UInt64)
    case badTensor(name: String, reason: String)
    case unsupportedTensorType(name: String, type: UInt32)
    case missingKey(String)
    case wrongKeyType(key: String, expected: String)
    case missingTensor(String)

    public var description: String {
        switch self {
        case let .cannotOpen(path, reason): "cannot open \(path): \(reason)"
        case let .notGGUF(path): "\(path) is not a GGUF file (bad magic)"
        case let .unsupportedVersion(v): "unsupported GGUF version \(v) (supported: 2, 3)"
        case let .truncated(what, path): "\(path) is truncated while reading \(what)"
        case let .countTooLarge(what, count, limit): "\(what): count \(count) exceeds what the file can hold (\(limit))"
        case let .invalidValueType(key, type): "metadata key '\(key)' has unknown value type \(type)"
        case let .nestingTooDeep(key): "metadata key '\(key)' nests arrays too deeply"
        case let .invalidUTF8(what): "\(what) is not valid UTF-8"
        case let .duplicateKey(key): "metadata key '\(key)' appears twice"
        case let .duplicateTensor(name): "tensor '\(name)' appears twice"
        case let .badAlignment(a): "general.alignment \(a) is not a power of two"
        case let .badTensor(name, reason): "tensor '\(name)': \(reason)"
        case let .unsupportedTensorType(name, type): "tensor '\(name)' has unsupported ggml type \(GGMLType.describe(type))"
        case let .missingKey(key): "metadata key '\(key)' is missing"
        case let .wrongKeyType(key, expected): "metadata key '\(key)' is not \(expected)"
        case let .missingTensor(name): "tensor '\(name)' is missing"
        }
    }
}
