// Winograd F(4×4, 3×3) transforms for bf16 3×3 convolutions (VLMTensor's WinogradConvolution.swift), in
// AVX-512 over 16 channels at a time. The input transform rounds straight into the bf16 rows the
// vdpbf16ps tile reads (no float32 buffer and no separate rounding pass); the output transform applies
// the folded batch-norm bias, the residual and ReLU on its way to the output pixels.
// Same rules as BF16Tiles.h: call only when `BF16.isSupported`; empty stubs off x86-64.
#ifndef VLM_BF16_WINOGRAD_H
#define VLM_BF16_WINOGRAD_H

#include <stddef.h>
#include <stdint.h>

/// V_p = (Bᵀ d B)_p rounded to bf16 for one tile, d its 6×6 input window with top-left pixel (y0, x0)
/// (either may be negative: pixels outside the image read as zero) in a channels-last image of
/// `height` × `width` × `channels` (a multiple of 8). Position p = 6·row + column goes to
/// `v + p * position_stride`, `channels` values.
void vlm_bf16_winograd_input(const float *image, int height, int width, int channels, int y0, int x0,
                             uint16_t *v, size_t position_stride);

/// Y = Aᵀ M A for one tile, M's position p at `m + p * position_stride` (`channels` floats, a multiple
/// of 8); writes the top-left `rows` × `columns` of the 4×4 block to `out` (pixel stride `channels`,
/// row stride `row_stride`) as Y + bias (+ what `out` holds, with `accumulate`), then max(·, 0) with `relu`.
void vlm_winograd_output(const float *m, size_t position_stride, int channels, const float *bias, float *out,
                         size_t row_stride, int rows, int columns, int accumulate, int relu);

#endif
