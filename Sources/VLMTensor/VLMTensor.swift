// VLMTensor: placeholder until its issue lands.
