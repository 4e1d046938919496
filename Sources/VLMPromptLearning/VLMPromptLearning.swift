// VLMPromptLearning: few-shot prompt learning for CLIP (issue: optimise-prompt). Placeholder until it lands.
