/// The protocol version, advertised in `initialize`; protocol/vlmd.schema.json carries the same.
public enum ProtocolVersion {
    public static let current = "0.1.0"
}
