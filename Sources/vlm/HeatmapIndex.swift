import Foundation
import VLMWire

/// The heatmap directory given on the command line, made if missing (the daemon writes only into an
/// existing directory), as an absolute path.
func prepareHeatmapDirectory(_ path: String) throws -> String {
    let directory = absolute(path)
    do { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) } catch {
        throw RequestFailed(message: "--heatmaps: cannot create \(directory): \(error.localizedDescription)")
    }
    return directory
}

/// `index.html` beside the heatmaps: every attribution in order, its picture, text and selection, so
/// a run can be read as one page.
enum HeatmapIndex {
    /// Writes the page and returns its path.
    static func write(title: String, attributions: [AttributionInfo], in directory: String) throws -> String {
        var body = "<h1>\(escape(title))</h1>\n"
        for a in attributions {
            let step = a.step
            var caption = "<b>\(step)</b>: \(escape(a.text))"
            if let selection = a.selection {
                caption += String(format: "<br><small>selected %@ — %.0f%% of the map</small>",
                                  escape(describeBox(selection.pixelBox)), 100 * Double(selection.mass))
            }
            let file = a.heatmapPath.map { URL(fileURLWithPath: $0).lastPathComponent }
            let picture = file.map { "<img src=\"\(escape($0))\" alt=\"heatmap \(step)\">" } ?? "<p>(no heatmap)</p>"
            body += "<figure>\(picture)<figcaption>\(caption)</figcaption></figure>\n"
        }
        let page = """
            <!doctype html>
            <html><head><meta charset="utf-8"><title>\(escape(title))</title>
            <style>body{font-family:sans-serif;background:#1c1c20;color:#eee}figure{display:inline-block;vertical-align:top;
            margin:8px;max-width:420px}img{max-width:100%;image-rendering:pixelated}</style></head>
            <body>
            \(body)</body></html>

            """
        let path = URL(fileURLWithPath: directory).appendingPathComponent("index.html").path
        try Data(page.utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
        return path
    }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}
