#include "BF16Tiles.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include <string.h>

#define BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16,evex512")))

BF16_TARGET void vlm_bf16_round_rows(const float *a, size_t lda, int rows, int depth, uint16_t *b, size_t ldb) {
    for (int r = 0; r < rows; r++) {
        const float *src = a + (size_t)r * lda;
        uint16_t *dst = b + (size_t)r * ldb;
        int k = 0;
        for (; k + 16 <= depth; k += 16) {
            __m256bh v = _mm512_cvtneps_pbh(_mm512_loadu_ps(src + k));
            _mm256_storeu_si256((__m256i *)(dst + k), (__m256i)v);
        }
        if (k < depth) {
            __mmask16 m = (__mmask16)((1u << (depth - k)) - 1);
            __m256bh v = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, src + k));
            _mm256_mask_storeu_epi16(dst + k, m, (__m256i)v);
        }
        if (depth & 1) dst[depth] = 0;
    }
}

/// The tile for at most `R` rows (R a constant where this is inlined, so the accumulators stay in registers).
/// Missing rows of a ragged tile read row 0 and are not stored.
static inline __attribute__((always_inline, target("avx512f,avx512bw,avx512vl,avx512bf16,evex512")))
void tile_of(const int R, const uint16_t *a, size_t lda, int rows, int pairs, const uint16_t *panel,
             float *c, size_t ldc, int columns, const float *bias, int load, int finish, int relu) {
    const uint32_t *row[vlm_bf16_tile_rows];
    for (int i = 0; i < R; i++) row[i] = (const uint32_t *)(a + (size_t)(i < rows ? i : 0) * lda);
    __mmask16 m0 = columns >= 16 ? 0xFFFF : (__mmask16)((1u << columns) - 1);
    __mmask16 m1 = columns >= 32 ? 0xFFFF : columns <= 16 ? 0 : (__mmask16)((1u << (columns - 16)) - 1);

    __m512 acc[vlm_bf16_tile_rows][2];
    for (int i = 0; i < R; i++) {
        if (load && i < rows) {
            acc[i][0] = _mm512_maskz_loadu_ps(m0, c + (size_t)i * ldc);
            acc[i][1] = _mm512_maskz_loadu_ps(m1, c + (size_t)i * ldc + 16);
        } else {
            acc[i][0] = _mm512_setzero_ps();
            acc[i][1] = _mm512_setzero_ps();
        }
    }
    const uint16_t *p = panel;
    for (int k = 0; k < pairs; k++, p += 64) {
        __m512bh b0 = (__m512bh)_mm512_loadu_si512(p);
        __m512bh b1 = (__m512bh)_mm512_loadu_si512(p + 32);
        for (int i = 0; i < R; i++) {
            __m512bh x = (__m512bh)_mm512_set1_epi32((int)row[i][k]);
            acc[i][0] = _mm512_dpbf16_ps(acc[i][0], x, b0);
            acc[i][1] = _mm512_dpbf16_ps(acc[i][1], x, b1);
        }
    }
    if (finish) {
        __m512 bias0 = _mm512_maskz_loadu_ps(m0, bias), bias1 = _mm512_maskz_loadu_ps(m1, bias + 16);
        __m512 floor = relu ? _mm512_setzero_ps() : _mm512_set1_ps(-__builtin_inff());
        for (int i = 0; i < R; i++) {
            acc[i][0] = _mm512_max_ps(_mm512_add_ps(acc[i][0], bias0), floor);
            acc[i][1] = _mm512_max_ps(_mm512_add_ps(acc[i][1], bias1), floor);
        }
    }
    for (int i = 0; i < R && i < rows; i++) {
        _mm512_mask_storeu_ps(c + (size_t)i * ldc, m0, acc[i][0]);
        _mm512_mask_storeu_ps(c + (size_t)i * ldc + 16, m1, acc[i][1]);
    }
}

// A short tile (the few Winograd tiles of RN50's 7×7 and 14×14 stages at batch 1, a product's last
// rows) runs a kernel of 4 or 8 rows instead of computing 12 and dropping the rest. Every value is
// summed in the same order whichever kernel computes it.
BF16_TARGET void vlm_bf16_tile(const uint16_t *a, size_t lda, int rows, int pairs, const uint16_t *panel,
                               float *c, size_t ldc, int columns, const float *bias, int load, int finish, int relu) {
    if (rows <= 4) tile_of(4, a, lda, rows, pairs, panel, c, ldc, columns, bias, load, finish, relu);
    else if (rows <= 8) tile_of(8, a, lda, rows, pairs, panel, c, ldc, columns, bias, load, finish, relu);
    else tile_of(vlm_bf16_tile_rows, a, lda, rows, pairs, panel, c, ldc, columns, bias, load, finish, relu);
}

#else
// No AVX-512 BF16 off x86-64: `BF16.isSupported` is false and these are never called.
void vlm_bf16_round_rows(const float *a, size_t lda, int rows, int depth, uint16_t *b, size_t ldb) {
    (void)a; (void)lda; (void)rows; (void)depth; (void)b; (void)ldb;
}
void vlm_bf16_tile(const uint16_t *a, size_t lda, int rows, int pairs, const uint16_t *panel,
                   float *c, size_t ldc, int columns, const float *bias, int load, int finish, int relu) {
    (void)a; (void)lda; (void)rows; (void)pairs; (void)panel; (void)c; (void)ldc; (void)columns; (void)bias;
    (void)load; (void)finish; (void)relu;
}
#endif
