func runLMBench(_ args: [String]) { print("LM benchmark not built yet") }
