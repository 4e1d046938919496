// VLMImage: placeholder until its issue lands.
