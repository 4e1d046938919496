/// The notification names vlmd knows, in one place. Requests carry their own names (`PingRequest.method`,
/// declared beside its params); protocol/vlmd.schema.json lists both and tests keep them in step.
public enum Method {
    // Client -> server notifications (LSP)
    public static let initialized = "initialized"
    public static let exit = "exit"
    public static let cancelRequest = "$/cancelRequest"
    public static let setTrace = "$/setTrace"

    // Server -> client notifications (LSP)
    public static let progress = "$/progress"
    public static let logMessage = "window/logMessage"
    public static let logTrace = "$/logTrace"
}
