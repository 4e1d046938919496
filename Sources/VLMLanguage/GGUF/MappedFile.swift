// A model file's bytes in memory, released when the last reference goes away.
import Foundation
import VLMTensor

/// The whole file, copied into memory when loaded rather than memory-mapped, so a file truncated
/// on disk while the model is resident cannot crash the daemon with SIGBUS (see FileBytes).
///
/// `@unchecked Sendable`: the memory is read-only and immutable for its lifetime.
public final class MappedFile: @unchecked Sendable {
    public let url: URL
    private let file: FileBytes
    public var bytes: UnsafeRawPointer { file.bytes }
    public var count: Int { file.count }

    public init(url: URL) throws {
        self.url = url
        do { file = try FileBytes(path: url.path) } catch { throw GGUFError.cannotOpen(path: url.path, reason: error.reason) }
        guard file.count > 0 else { throw GGUFError.truncated(what: "file header", path: url.path) }
    }
}
