import Testing
@testable import VLMImage

/// Digests from Python's hashlib (sha256.json, written by the fixture script).
@Suite struct SHA256Tests {
    @Test func matchesHashlibOnAbc() throws {
        let expected = try Fixtures.json("sha256.json")["abc"] as! String
        #expect(SHA256.hex(Array("abc".utf8)) == expected)
    }

    @Test(arguments: [0, 1, 3, 55, 56, 63, 64, 65, 119, 120, 1000, 1 << 20])
    func matchesHashlibOnPattern(length: Int) throws {
        let table = try Fixtures.json("sha256.json")["pattern"] as! [String: String]
        #expect(SHA256.hex(Fixtures.pattern(length)) == table[String(length)])
    }

    @Test func streamingInUnevenPiecesEqualsOneShot() {
        let data = Fixtures.pattern(5000)
        var hasher = SHA256()
        var i = 0
        for piece in [1, 63, 64, 65, 7, 1000, 3800] {
            hasher.update(data[i..<min(data.count, i + piece)])
            i = min(data.count, i + piece)
        }
        // A non-contiguous collection takes the byte-by-byte path.
        hasher.update(AnyCollection(data[i...]))
        #expect(hasher.finalize() == SHA256.hash(data))
    }
}
