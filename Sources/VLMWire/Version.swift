public enum VLMWireVersion { public static let protocolVersion = "0.1.0" }
