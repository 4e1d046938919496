func runCLIPBench(_ args: [String]) { print("CLIP benchmark not built yet") }
