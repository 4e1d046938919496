// VLMReasoning: staged visual reasoning with patch attribution. Placeholder until it lands.
