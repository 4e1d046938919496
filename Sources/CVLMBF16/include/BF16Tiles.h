// AVX-512 BF16 (vdpbf16ps) micro-kernels for VLMTensor's bf16 products (BF16GEMM.swift).
//
// Why C: Swift's Clang importer drops every intrinsic typed with `__bf16` vectors (`__m512bh`), so
// `_mm512_dpbf16_ps` and `_mm512_cvtneps_pbh` cannot be reached through `_Builtin_intrinsics.intel`.
// Only leaf kernels live here (and in BF16Winograd.h); packing, blocking, threading and the cpuid check are Swift's.
// The functions are compiled for AVX-512 BF16 by a target attribute (the rest of the package keeps its
// Haswell baseline) and must only be called when `BF16.isSupported`; elsewhere they are empty stubs.
#ifndef VLM_BF16_TILES_H
#define VLM_BF16_TILES_H

#include <stddef.h>
#include <stdint.h>

/// Rows per tile and columns per weight panel (two 16-lane vectors).
enum { vlm_bf16_tile_rows = 12, vlm_bf16_panel_width = 32 };

/// Rounds `rows` rows of `depth` floats (row stride `lda`) to bf16, round-to-nearest-even, into rows of
/// `depth` rounded up to even values (stride `ldb`; the odd tail is zero).
void vlm_bf16_round_rows(const float *a, size_t lda, int rows, int depth, uint16_t *b, size_t ldb);

/// One tile of C (up to 12 rows × up to 32 columns) += A-rows · panel over `pairs` k-pairs.
///   a: bf16 rows with stride `lda` (elements), each `2 * pairs` long;
///   panel: per k-pair, 32 columns × (value at even k, value at odd k) — the operand order of vdpbf16ps;
///   c: fp32, stride `ldc`; only `rows` × `columns` are read and written.
/// With `load`, the tile starts from C (a previous k-slice, or a residual); else from zero. With
/// `finish`, bias is added and, with `relu`, max(·, 0) applied before the store.
void vlm_bf16_tile(const uint16_t *a, size_t lda, int rows, int pairs, const uint16_t *panel,
                   float *c, size_t ldc, int columns, const float *bias, int load, int finish, int relu);

#endif
