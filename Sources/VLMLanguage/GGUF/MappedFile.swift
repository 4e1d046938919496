// A read-only memory mapping of a whole file, unmapped when the last reference goes away.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// `@unchecked Sendable`: the mapping is read-only (PROT_READ) and immutable for its lifetime.
public final class MappedFile: @unchecked Sendable {
    public let url: URL
    public let bytes: UnsafeRawPointer
    public let count: Int

    public init(url: URL) throws {
        self.url = url
        let fd = open(url.path, O_RDONLY)
        guard fd >= 0 else { throw GGUFError.cannotOpen(path: url.path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw GGUFError.cannotOpen(path: url.path, reason: String(cString: strerror(errno))) }
        count = Int(info.st_size)
        guard count > 0 else { throw GGUFError.truncated(what: "file header", path: url.path) }
        guard let address = mmap(nil, count, PROT_READ, MAP_PRIVATE, fd, 0), address != MAP_FAILED else {
            throw GGUFError.cannotOpen(path: url.path, reason: "mmap failed: \(String(cString: strerror(errno)))")
        }
        bytes = UnsafeRawPointer(address)
    }

    deinit { munmap(UnsafeMutableRawPointer(mutating: bytes), count) }
}
