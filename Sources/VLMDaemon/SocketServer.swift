import Foundation
import VLMRPC
import VLMWire

/// `vlmd --socket PATH`: one Services (models, caches) for every client; each connection gets a
/// Daemon of its own (its lifecycle, in-flight requests and cancellation), with its own writer.
/// A client that disconnects has its requests cancelled; the others are untouched. The daemon runs
/// until daemon/stop or a termination signal, then answers what is in flight, removes the socket
/// and exits 0.
public final class SocketServer: Sendable {
    private let listener: UnixSocket.Listener
    private let services: Services
    private let maxMessageBytes: Int
    private let open = Mutex<[ObjectIdentifier: Connection]>([:])
    private let stopping = Mutex(false)

    private struct Connection {
        let daemon: Daemon
        let writer: FrameWriter
    }

    public init(listener: UnixSocket.Listener, configuration: DaemonConfiguration) {
        self.listener = listener
        self.services = Services(configuration: configuration)
        self.maxMessageBytes = configuration.maxMessageBytes
    }

    /// Serves connections until the listener closes.
    public func serve() async {
        await withDiscardingTaskGroup { group in
            for await descriptor in listener.connections {
                group.addTask { await self.serveConnection(descriptor) }
            }
        }
    }

    /// One client, from connect to disconnect (or its `exit`, which closes only this connection).
    private func serveConnection(_ descriptor: Int32) async {
        let writer = FrameWriter(fileDescriptor: descriptor)
        let reader = FrameReader(fileDescriptor: descriptor, maxMessageBytes: maxMessageBytes)
        let daemon = Daemon(services: services, sink: writer, extraHandlers: { table in
            registerStop(&table) { await self.stop(reason: "daemon/stop") }
        }) { _ in
            writer.flush()
            shutdown(descriptor, Int32(SHUT_RDWR))  // the reader sees end of input and run() returns
        }
        let key = ObjectIdentifier(daemon)
        let accepted = open.withLock { connections -> Bool in
            connections[key] = Connection(daemon: daemon, writer: writer)
            return !stopping.withLock { $0 }
        }
        if accepted { await daemon.run(events: reader.events) }
        open.withLock { _ = $0.removeValue(forKey: key) }
        writer.close()  // after the reader ended: the descriptor number is free for the next client
    }

    /// Stops accepting, answers every connection's requests in flight (cancelled), exits 0.
    public func stop(reason: String) async -> Never {
        let first = stopping.withLock { stopping in defer { stopping = true }; return !stopping }
        guard first else { while true { try? await Task.sleep(for: .seconds(60)) } }
        listener.close()
        let connections = open.withLock { Array($0.values) }
        LogWriter.standardError.write("vlmd [info] \(reason): stopping (\(connections.count) client(s) connected)")
        await withTaskGroup(of: Void.self) { group in
            for connection in connections {
                group.addTask { await connection.daemon.terminate(reason: reason) }
            }
        }
        for connection in connections { connection.writer.flush() }
        LogWriter.standardError.drain()
        Foundation.exit(0)
    }
}

/// daemon/stop: replies, then `stop` runs (it waits for this reply like any other in flight).
public func registerStop(_ table: inout HandlerTable, stop: @escaping @Sendable () async -> Void) {
    table.register(StopRequest.self) { _, _ in
        Task { await stop() }
        return NullResult()
    }
}
