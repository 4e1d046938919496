import Foundation

/// Typed access to a JSON config with errors that name the file and the field.
struct ConfigReader {
    let root: [String: Any]
    let path: String

    init(data: Data, path: String) throws {
        self.path = path
        guard let object = try? JSONSerialization.jsonObject(with: data), let root = object as? [String: Any] else {
            throw CLIPError.invalidConfig(path: path, reason: "not a JSON object")
        }
        self.root = root
    }

    func invalid(_ reason: String) -> CLIPError { .invalidConfig(path: path, reason: reason) }

    func object(_ parent: [String: Any], _ key: String) throws -> [String: Any] {
        guard let value = parent[key] as? [String: Any] else { throw invalid("missing object '\(key)'") }
        return value
    }

    func positiveInt(_ parent: [String: Any], _ key: String, default fallback: Int? = nil) throws -> Int {
        guard let raw = parent[key], !(raw is NSNull) else {
            guard let fallback else { throw invalid("missing '\(key)'") }
            return fallback
        }
        guard let number = raw as? NSNumber, Double(number.int64Value) == number.doubleValue,
              number.int64Value > 0, number.int64Value <= Int64(Int32.max)
        else { throw invalid("'\(key)' must be a positive integer") }
        return Int(number.int64Value)
    }

    func positiveDouble(_ parent: [String: Any], _ key: String, default fallback: Double) throws -> Double {
        guard let raw = parent[key], !(raw is NSNull) else { return fallback }
        guard let number = raw as? NSNumber, number.doubleValue > 0, number.doubleValue.isFinite else {
            throw invalid("'\(key)' must be a positive number")
        }
        return number.doubleValue
    }

    func bool(_ parent: [String: Any], _ key: String, default fallback: Bool) throws -> Bool {
        guard let raw = parent[key], !(raw is NSNull) else { return fallback }
        guard let value = raw as? Bool else { throw invalid("'\(key)' must be true or false") }
        return value
    }

    /// open_clip allows image_size as an int or an [h, w] pair; only square inputs are implemented.
    func squareSize(_ parent: [String: Any], _ key: String, default fallback: Int) throws -> Int {
        if let pair = parent[key] as? [Any] {
            guard pair.count == 2, let h = pair[0] as? Int, let w = pair[1] as? Int, h > 0 else { throw invalid("'\(key)' must be an int or [h, w]") }
            guard h == w else { throw CLIPError.unsupportedArchitecture("non-square image_size \(h)×\(w)") }
            return h
        }
        return try positiveInt(parent, key, default: fallback)
    }

    func floats(_ parent: [String: Any], _ key: String, count: Int, default fallback: [Float]) throws -> [Float] {
        guard let raw = parent[key], !(raw is NSNull) else { return fallback }
        guard let list = raw as? [Any], list.count == count else { throw invalid("'\(key)' must be a list of \(count) numbers") }
        return try list.map { value in
            guard let number = value as? NSNumber, number.doubleValue.isFinite else { throw invalid("'\(key)' must hold numbers") }
            return number.floatValue
        }
    }

    /// Options that would change the network in ways this runtime does not implement.
    func rejectUnsupported(_ object: [String: Any], _ keys: [String], section: String) throws {
        for key in keys {
            guard let value = object[key] else { continue }
            if value is NSNull { continue }
            if let flag = value as? Bool, flag == false { continue }
            throw CLIPError.unsupportedArchitecture("\(section).\(key) = \(value)")
        }
    }
}
