import Foundation

/// vlmd's second transport: a Unix domain socket (`vlmd --socket PATH`), so one daemon, with its
/// models resident, serves many short-lived clients one after another or at once. The socket lives
/// in a directory only its user can enter (0700) and is itself 0600: the file system is the access
/// control, as for ssh-agent's socket.
public enum UnixSocket {
    public struct Failure: Error, CustomStringConvertible {
        public enum Kind: Sendable { case alreadyRunning, unsafeDirectory, setUp }
        public let kind: Kind
        public let message: String
        public var description: String { message }
    }

    /// Where a daemon listens when nobody names a socket: `$VLMD_SOCKET`, else
    /// `$XDG_RUNTIME_DIR/vlmd/vlmd.sock`, else `$XDG_CACHE_HOME/vlmd/run/vlmd.sock` (~/.cache by default).
    public static func defaultPath(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let named = environment["VLMD_SOCKET"], !named.isEmpty { return named }
        if let runtime = environment["XDG_RUNTIME_DIR"], !runtime.isEmpty { return runtime + "/vlmd/vlmd.sock" }
        let cache = environment["XDG_CACHE_HOME"].flatMap { $0.isEmpty ? nil : $0 }
            ?? FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache").path
        return cache + "/vlmd/run/vlmd.sock"
    }

    /// Connects to the daemon listening at `path`; nil when nothing listens there (no file, or a
    /// stale one left by a daemon that died).
    public static func connect(path: String) -> Int32? {
        guard let address = SocketAddress(path: path) else { return nil }
        let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { return nil }
        _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC)
        let connected = address.withPointer { Glibc.connect(descriptor, $0, $1) } == 0
        if !connected { close(descriptor) }
        return connected ? descriptor : nil
    }

    /// Creates the listening socket at `path` for a daemon, after making sure it is safe and free:
    /// the directory is created 0700 if missing and refused if anyone else can enter it; a second
    /// daemon on the same path is refused (it holds `PATH.lock` for its life, and a socket that
    /// accepts a connection is live); a stale socket file is removed. The socket is made 0600.
    public static func listen(path: String) throws -> Listener {
        guard SocketAddress(path: path) != nil else {
            throw Failure(kind: .setUp, message: "\(path): too long for a Unix socket path (at most 107 bytes)")
        }
        let directory = (path as NSString).deletingLastPathComponent
        try ensurePrivateDirectory(directory.isEmpty ? "." : directory)
        let lock = try takeLock(path + ".lock", socketPath: path)
        do {
            try removeStaleSocket(path)
            return Listener(path: path, descriptor: try bindAndListen(path), lockDescriptor: lock)
        } catch {
            close(lock)
            throw error
        }
    }

    /// Makes `path` (and missing parents) with mode 0700; an existing directory must be ours and closed to others.
    public static func ensurePrivateDirectory(_ path: String) throws {
        var info = stat()
        if lstat(path, &info) != 0 {
            do {
                try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            } catch {
                throw Failure(kind: .setUp, message: "cannot create the socket directory \(path): \(error.localizedDescription)")
            }
            guard lstat(path, &info) == 0 else { throw Failure(kind: .setUp, message: "cannot create the socket directory \(path)") }
        }
        guard info.st_mode & S_IFMT == S_IFDIR else {
            throw Failure(kind: .unsafeDirectory, message: "\(path) is not a directory")
        }
        guard info.st_uid == getuid() else {
            throw Failure(kind: .unsafeDirectory, message: "the socket directory \(path) belongs to another user; use a directory of your own")
        }
        guard info.st_mode & 0o077 == 0 else {
            throw Failure(kind: .unsafeDirectory, message: String(
                format: "the socket directory %@ is open to other users (mode %o); it must be 0700 (chmod 700 it or choose another)",
                path, Int(info.st_mode & 0o777)))
        }
    }

    /// An exclusive flock held for the daemon's life: two daemons starting at once cannot both win.
    private static func takeLock(_ lockPath: String, socketPath: String) throws -> Int32 {
        let descriptor = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw Failure(kind: .setUp, message: "cannot open \(lockPath): \(String(cString: strerror(errno)))")
        }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            close(descriptor)
            throw Failure(kind: .alreadyRunning, message: "another vlmd is already listening on \(socketPath)")
        }
        return descriptor
    }

    private static func removeStaleSocket(_ path: String) throws {
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        guard info.st_mode & S_IFMT == S_IFSOCK else {
            throw Failure(kind: .setUp, message: "\(path) exists and is not a socket; not replacing it")
        }
        if let live = connect(path: path) {
            close(live)
            throw Failure(kind: .alreadyRunning, message: "another vlmd is already listening on \(path)")
        }
        guard unlink(path) == 0 || errno == ENOENT else {
            throw Failure(kind: .setUp, message: "cannot remove the stale socket \(path): \(String(cString: strerror(errno)))")
        }
    }

    private static func bindAndListen(_ path: String) throws -> Int32 {
        let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw Failure(kind: .setUp, message: "socket(): \(String(cString: strerror(errno)))") }
        _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC)
        let address = SocketAddress(path: path)!
        let previousMask = umask(0o177)  // born 0600: no moment where others could connect
        let bound = address.withPointer { bind(descriptor, $0, $1) } == 0
        let bindError = errno
        umask(previousMask)
        guard bound, chmod(path, 0o600) == 0, Glibc.listen(descriptor, 64) == 0 else {
            let reason = String(cString: strerror(bound ? errno : bindError))
            close(descriptor)
            throw Failure(kind: .setUp, message: "cannot listen on \(path): \(reason)")
        }
        return descriptor
    }

    /// A listening socket; `connections` yields each accepted connection's descriptor.
    public final class Listener: Sendable {
        public let path: String
        private let descriptor: Int32
        private let lockDescriptor: Int32

        init(path: String, descriptor: Int32, lockDescriptor: Int32) {
            self.path = path
            self.descriptor = descriptor
            self.lockDescriptor = lockDescriptor
        }

        /// Accepts on a thread of its own (accept blocks); ends when the listener is closed.
        public var connections: AsyncStream<Int32> {
            let (stream, continuation) = AsyncStream<Int32>.makeStream()
            let descriptor = self.descriptor
            let thread = Thread {
                while true {
                    let connection = accept(descriptor, nil, nil)
                    if connection >= 0 {
                        _ = fcntl(connection, F_SETFD, FD_CLOEXEC)
                        continuation.yield(connection)
                    } else if errno != EINTR && errno != ECONNABORTED {
                        break
                    }
                }
                continuation.finish()
            }
            thread.name = "vlmd.accept"
            thread.start()
            return stream
        }

        /// Stops accepting and removes the socket file, so the path is free for the next daemon.
        public func close() {
            unlink(path)
            shutdown(descriptor, Int32(SHUT_RDWR))  // wakes the accepting thread
        }
    }
}

/// A `sockaddr_un` for a path.
private struct SocketAddress {
    private var storage = sockaddr_un()

    init?(path: String) {
        let bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: storage.sun_path)
        guard !bytes.isEmpty, bytes.count < capacity else { return nil }
        storage.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &storage.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
    }

    func withPointer<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        var copy = storage
        return withUnsafePointer(to: &copy) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
    }
}
