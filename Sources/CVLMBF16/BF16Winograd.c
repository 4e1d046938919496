#include "BF16Winograd.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16,evex512")))
#define INLINE_BF16 static inline __attribute__((always_inline, target("avx512f,avx512bw,avx512vl,avx512bf16,evex512")))

// The transforms are written in the operation order of the float32 Swift path (WinogradConvolution.swift)
// with no fused multiply-adds, so V and Y are bit for bit what that path computes before its own bf16
// rounding pass: the bf16 tower's results do not change, only its speed.
#pragma clang fp contract(off)

INLINE_BF16 __m512 times(float k, __m512 x) { return _mm512_mul_ps(_mm512_set1_ps(k), x); }

/// Bᵀ (d0 … d5): the rows of Bᵀ are F(4,3)'s interpolation points 0, ±1, ±2 and ∞ (Lavin & Gray).
INLINE_BF16 void input_transform(__m512 d0, __m512 d1, __m512 d2, __m512 d3, __m512 d4, __m512 d5, __m512 out[6]) {
    out[0] = _mm512_add_ps(_mm512_sub_ps(times(4, d0), times(5, d2)), d4);
    out[1] = _mm512_sub_ps(_mm512_add_ps(d3, d4), times(4, _mm512_add_ps(d1, d2)));
    out[2] = _mm512_add_ps(_mm512_sub_ps(d4, d3), times(4, _mm512_sub_ps(d1, d2)));
    out[3] = _mm512_add_ps(_mm512_sub_ps(d4, d2), times(2, _mm512_sub_ps(d3, d1)));
    out[4] = _mm512_add_ps(_mm512_sub_ps(d4, d2), times(2, _mm512_sub_ps(d1, d3)));
    out[5] = _mm512_add_ps(_mm512_sub_ps(times(4, d1), times(5, d3)), d5);
}

/// Aᵀ (m0 … m5), four entries.
INLINE_BF16 void output_transform(__m512 m0, __m512 m1, __m512 m2, __m512 m3, __m512 m4, __m512 m5, __m512 out[4]) {
    __m512 sum12 = _mm512_add_ps(m1, m2), difference12 = _mm512_sub_ps(m1, m2);
    __m512 sum34 = _mm512_add_ps(m3, m4), difference34 = _mm512_sub_ps(m3, m4);
    out[0] = _mm512_add_ps(_mm512_add_ps(m0, sum12), sum34);
    out[1] = _mm512_add_ps(difference12, times(2, difference34));
    out[2] = _mm512_add_ps(sum12, times(4, sum34));
    out[3] = _mm512_add_ps(_mm512_add_ps(difference12, times(8, difference34)), m5);
}

/// The lanes of the channel group starting at c: all 16, or the 8 of a ragged last group.
INLINE_BF16 __mmask16 lanes_from(int c, int channels) { return channels - c >= 16 ? 0xFFFF : 0x00FF; }

BF16_TARGET void vlm_bf16_winograd_input(const float *image, int height, int width, int channels, int y0, int x0,
                                         uint16_t *v, size_t position_stride) {
    // Which of the window's rows and columns fall inside the image (the rest are the zero padding).
    int row_inside[6], column_inside[6];
    for (int i = 0; i < 6; i++) {
        row_inside[i] = y0 + i >= 0 && y0 + i < height;
        column_inside[i] = x0 + i >= 0 && x0 + i < width;
    }
    for (int c = 0; c < channels; c += 16) {
        __mmask16 lanes = lanes_from(c, channels);
        __m512 rows_done[6][6];  // (d B), row i, entry j
        for (int i = 0; i < 6; i++) {
            __m512 d[6];
            for (int j = 0; j < 6; j++) d[j] = _mm512_setzero_ps();
            if (row_inside[i]) {
                const float *row = image + (size_t)(y0 + i) * width * channels + c;
                for (int j = 0; j < 6; j++)
                    if (column_inside[j]) d[j] = _mm512_maskz_loadu_ps(lanes, row + (size_t)(x0 + j) * channels);
            }
            input_transform(d[0], d[1], d[2], d[3], d[4], d[5], rows_done[i]);
        }
        for (int j = 0; j < 6; j++) {
            __m512 column[6];
            input_transform(rows_done[0][j], rows_done[1][j], rows_done[2][j], rows_done[3][j], rows_done[4][j], rows_done[5][j],
                            column);
            for (int i = 0; i < 6; i++) {
                __m256bh rounded = _mm512_cvtneps_pbh(column[i]);
                _mm256_mask_storeu_epi16(v + (size_t)(i * 6 + j) * position_stride + c, lanes, (__m256i)rounded);
            }
        }
    }
}

BF16_TARGET void vlm_winograd_output(const float *m, size_t position_stride, int channels, const float *bias, float *out,
                                     size_t row_stride, int rows, int columns, int accumulate, int relu) {
    const __m512 floor = relu ? _mm512_setzero_ps() : _mm512_set1_ps(-__builtin_inff());
    for (int o = 0; o < channels; o += 16) {
        __mmask16 lanes = lanes_from(o, channels);
        __m512 rows_done[6][4];  // (M A), row i, entry j
        for (int i = 0; i < 6; i++) {
            const float *p = m + (size_t)i * 6 * position_stride + o;
            output_transform(_mm512_maskz_loadu_ps(lanes, p), _mm512_maskz_loadu_ps(lanes, p + position_stride),
                             _mm512_maskz_loadu_ps(lanes, p + 2 * position_stride), _mm512_maskz_loadu_ps(lanes, p + 3 * position_stride),
                             _mm512_maskz_loadu_ps(lanes, p + 4 * position_stride), _mm512_maskz_loadu_ps(lanes, p + 5 * position_stride),
                             rows_done[i]);
        }
        __m512 b = _mm512_maskz_loadu_ps(lanes, bias + o);
        for (int j = 0; j < columns; j++) {
            __m512 y[4];
            output_transform(rows_done[0][j], rows_done[1][j], rows_done[2][j], rows_done[3][j], rows_done[4][j], rows_done[5][j], y);
            for (int i = 0; i < rows; i++) {
                float *pixel = out + (size_t)i * row_stride + (size_t)j * channels + o;
                __m512 sum = _mm512_add_ps(y[i], b);
                if (accumulate) sum = _mm512_add_ps(sum, _mm512_maskz_loadu_ps(lanes, pixel));
                _mm512_mask_storeu_ps(pixel, lanes, _mm512_max_ps(sum, floor));
            }
        }
    }
}

#else
// No AVX-512 BF16 off x86-64: `BF16.isSupported` is false and these are never called.
void vlm_bf16_winograd_input(const float *image, int height, int width, int channels, int y0, int x0,
                             uint16_t *v, size_t position_stride) {
    (void)image; (void)height; (void)width; (void)channels; (void)y0; (void)x0; (void)v; (void)position_stride;
}
void vlm_winograd_output(const float *m, size_t position_stride, int channels, const float *bias, float *out,
                         size_t row_stride, int rows, int columns, int accumulate, int relu) {
    (void)m; (void)position_stride; (void)channels; (void)bias; (void)out; (void)row_stride; (void)rows; (void)columns;
    (void)accumulate; (void)relu;
}
#endif
