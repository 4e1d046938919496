import Foundation

/// The one way vlmd writes files (heatmaps, learned prompts).
///
/// A client names where results go, so a write must not be turned against files elsewhere:
/// - the directory must already exist; every step works relative to one open descriptor of it, so
///   it cannot be swapped for another between the check and the write;
/// - the file is never written through a symbolic link (a link at the target is refused, temp files
///   are created with O_EXCL | O_NOFOLLOW);
/// - content goes to an unnamed (O_TMPFILE) or hidden temp file in the same directory, is fsynced,
///   then renamed over the target: a reader sees the old file or the new one, never a torn one, and a
///   kill mid-write leaves the old file (and, with O_TMPFILE, nothing else) behind;
/// - a replaced file keeps its permission bits.
/// `check` runs the same checks with a probe file, so a request can fail before its long work.
public enum SafeFileWriter {
    public struct Failure: Error, Sendable, CustomStringConvertible, Equatable {
        public let path: String
        public let reason: String
        public var description: String { "\(path): \(reason)" }
    }

    /// Fails unless `url` could be written now: its directory exists, is writable, and the name is
    /// acceptable (not too long, not a link or anything but a regular file).
    public static func check(_ url: URL) throws(Failure) {
        let directory = try openDirectory(of: url)
        defer { close(directory) }
        let name = url.lastPathComponent
        try checkName(name, path: url.path)
        _ = try existingMode(name, in: directory, path: url.path)
        let probe = try createTemporary(in: directory, named: name, mode: 0o600, path: url.path)
        probe.discard(in: directory)
    }

    /// Writes `bytes` to `url` atomically (see the type's comment).
    public static func write(_ bytes: some ContiguousBytes, to url: URL) throws(Failure) {
        let directory = try openDirectory(of: url)
        defer { close(directory) }
        let name = url.lastPathComponent
        let path = url.path
        try checkName(name, path: path)
        let mode = try existingMode(name, in: directory, path: path) ?? defaultMode()
        let temporary = try createTemporary(in: directory, named: name, mode: mode, path: path)
        do throws(Failure) {
            try writeAll(bytes, to: temporary.descriptor, path: path)
            guard fchmod(temporary.descriptor, mode) == 0, fsync(temporary.descriptor) == 0 else {
                throw Failure(path: path, reason: "cannot write: \(String(cString: strerror(errno)))")
            }
            try temporary.install(as: name, in: directory, path: path)
            fsync(directory)
        } catch {
            temporary.discard(in: directory)
            throw error
        }
    }

    // MARK: steps

    private static func openDirectory(of url: URL) throws(Failure) -> Int32 {
        let directory = url.deletingLastPathComponent().path
        let descriptor = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else {
            let reason = errno == ENOENT ? "no such directory (it must exist)" :
                errno == ENOTDIR ? "not a directory" : String(cString: strerror(errno))
            throw Failure(path: directory, reason: reason)
        }
        return descriptor
    }

    private static func checkName(_ name: String, path: String) throws(Failure) {
        guard !name.isEmpty, name != ".", name != "..", !name.contains("/") else {
            throw Failure(path: path, reason: "not a file name")
        }
        // Room for the hidden temp name (".<name>.<random>.tmp") within NAME_MAX.
        guard name.utf8.count + 16 <= Int(NAME_MAX) else {
            throw Failure(path: path, reason: "file name longer than \(Int(NAME_MAX) - 16) bytes")
        }
    }

    /// The permission bits of the file being replaced, or nil when there is none. Anything but a
    /// regular file at the name is refused: a link could point anywhere.
    private static func existingMode(_ name: String, in directory: Int32, path: String) throws(Failure) -> mode_t? {
        var info = stat()
        guard fstatat(directory, name, &info, AT_SYMLINK_NOFOLLOW) == 0 else {
            if errno == ENOENT { return nil }
            throw Failure(path: path, reason: String(cString: strerror(errno)))
        }
        switch info.st_mode & S_IFMT {
        case S_IFREG: break
        case S_IFLNK: throw Failure(path: path, reason: "is a symbolic link; refusing to write through or replace it")
        case S_IFDIR: throw Failure(path: path, reason: "is a directory")
        default: throw Failure(path: path, reason: "is not a regular file")
        }
        guard faccessat(directory, name, W_OK, AT_EACCESS) == 0 else {
            throw Failure(path: path, reason: "not writable: \(String(cString: strerror(errno)))")
        }
        return info.st_mode & 0o7777
    }

    private static func defaultMode() -> mode_t {
        let mask = umask(0o022)
        umask(mask)
        return 0o666 & ~mask
    }

    /// A file being written: unnamed (O_TMPFILE) where the file system allows it, else hidden.
    private struct Temporary {
        let descriptor: Int32
        let name: String?

        func install(as target: String, in directory: Int32, path: String) throws(Failure) {
            var staged = name
            if staged == nil {
                // Give the unnamed file a hidden name for the instant before the rename (linkat
                // cannot replace an existing target).
                let hidden = SafeFileWriter.hiddenName(for: target)
                guard linkat(AT_FDCWD, "/proc/self/fd/\(descriptor)", directory, hidden, AT_SYMLINK_FOLLOW) == 0 else {
                    throw Failure(path: path, reason: "cannot write: \(String(cString: strerror(errno)))")
                }
                staged = hidden
            }
            guard renameat(directory, staged!, directory, target) == 0 else {
                let reason = String(cString: strerror(errno))
                unlinkat(directory, staged!, 0)
                throw Failure(path: path, reason: "cannot write: \(reason)")
            }
            close(descriptor)
        }

        func discard(in directory: Int32) {
            close(descriptor)
            if let name { unlinkat(directory, name, 0) }
        }
    }

    private static func createTemporary(in directory: Int32, named target: String, mode: mode_t, path: String) throws(Failure) -> Temporary {
        #if os(Linux)
        let unnamed = openat(directory, ".", O_WRONLY | O_CLOEXEC | O_DIRECTORY | 0o20000000 /* __O_TMPFILE */, mode)
        if unnamed >= 0 { return Temporary(descriptor: unnamed, name: nil) }
        if errno == EACCES || errno == EROFS || errno == ENOSPC || errno == EDQUOT {
            throw Failure(path: path, reason: "cannot write in its directory: \(String(cString: strerror(errno)))")
        }
        #endif
        let name = hiddenName(for: target)
        let descriptor = openat(directory, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)
        guard descriptor >= 0 else {
            throw Failure(path: path, reason: "cannot write in its directory: \(String(cString: strerror(errno)))")
        }
        return Temporary(descriptor: descriptor, name: name)
    }

    fileprivate static func hiddenName(for target: String) -> String {
        ".\(target).\(String(UInt32.random(in: 0...UInt32.max), radix: 36)).tmp"
    }

    private static func writeAll(_ bytes: some ContiguousBytes, to descriptor: Int32, path: String) throws(Failure) {
        let failure: Failure? = bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = Foundation.write(descriptor, raw.baseAddress! + offset, raw.count - offset)
                if n < 0, errno == EINTR { continue }
                guard n > 0 else { return Failure(path: path, reason: "cannot write: \(String(cString: strerror(errno)))") }
                offset += n
            }
            return nil
        }
        if let failure { throw failure }
    }
}
