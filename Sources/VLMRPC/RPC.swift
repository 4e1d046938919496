import VLMWire
