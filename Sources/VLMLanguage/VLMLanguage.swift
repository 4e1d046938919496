// VLMLanguage: placeholder until its issue lands.
