// VLMLanguage: GGUF language models on the CPU, matching llama.cpp token for token.
//
// Where things are (read in this order):
//   LanguageModel.swift        the public API: load, tokenize, generate (streaming), score, describe
//   GGUF/                      the file format: bounds-checked reader over a memory mapping
//   Model/Architecture         the registry of families (llama, qwen2, qwen3, gemma3): options of the one forward pass
//   Model/Hyperparameters      `<arch>.*` keys -> shapes
//   Model/Weights              tensors by name, viewed in place (no dequantisation at load)
//   Model/Transformer          the forward pass, top to bottom (embeddings, N blocks, norm, logits)
//   Model/LayerMath, KVCache   RMSNorm, RoPE, softmax, SwiGLU; the per-sequence attention memory
//   Tokenizer/                 SentencePiece-style (llama) and byte-level BPE (gpt2) from GGUF metadata,
//                              special tokens, detokenisation, chat templates
//   Generation/                samplers and the seeded random generator
// The matrix kernels live in VLMTensor/Quantized (block formats, activation quantisation, dots).
//
// Why results are bit-identical to llama.cpp: see VLMTensor/Quantized/GGMLArithmetic.swift. For speed,
// build numeric code for a CPU with FMA (e.g. `-Xswiftc -target-cpu -Xswiftc haswell`); without it the
// fused multiply-adds become libm calls (still exact, several times slower).
