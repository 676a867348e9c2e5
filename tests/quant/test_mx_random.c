/* test_mx_random.c — the fast kernels against the scalar reference, bit for bit, on random
 * tensors built to hit every rule often: magnitudes from 1e-30 to 1e30 and up to FLT_MAX,
 * float subnormals, clamped scales, mixed signs, exact ties placed on purpose (including ties
 * at the saturation boundary and in the element-subnormal range), NaN/Inf and zero blocks. */
#include "mxtest.h"

#include <float.h>
#include <stdlib.h>
#include <string.h>

/* Sorted non-negative finite grid values of f at scale 1, plus the point above max normal. */
static int grid_of(mx_format f, double *g) {
    int n = 0;
    unsigned half = 1u << (mx_format_bits(f) - 1);
    for (unsigned c = 0; c < half; c++) {
        double v = mxr_code_value(f, c);
        if (isfinite(v))
            g[n++] = v;
    }
    g[n++] = mxr_above_max(f);
    return n;
}

static float rnd_sign(uint64_t *s, float v) { return (mxt_next(s) & 1) ? -v : v; }

/* One block of n values of a randomly chosen kind. */
static void fill_block(float *v, size_t n, mx_format f, uint64_t *s) {
    double g[300];
    int ng = grid_of(f, g);
    int kind = (int)(mxt_next(s) % 10);
    double base = pow(10.0, tu_uniform(s, -30.0, 30.0));
    switch (kind) {
    case 0: /* uniform at one magnitude */
    case 1:
        for (size_t i = 0; i < n; i++)
            v[i] = (float)(base * tu_uniform(s, -1.0, 1.0));
        break;
    case 2: /* a wide dynamic range inside the block: most elements underflow the grid */
        for (size_t i = 0; i < n; i++)
            v[i] = rnd_sign(s, (float)(base * pow(2.0, tu_uniform(s, -40.0, 0.0))));
        break;
    case 3: /* float subnormals (and a few tiny normals): clamped scales */
        for (size_t i = 0; i < n; i++) {
            uint32_t u = (uint32_t)mxt_next(s) & (i % 5 ? 0x807fffffu : 0x80ffffffu);
            memcpy(&v[i], &u, 4);
        }
        break;
    case 4: /* exact ties and grid points at a chosen scale 2^sc */
    case 5:
    case 6: {
        const int emax = mx_format_emax(f);
        int sc = (int)(mxt_next(s) % 255) - 127; /* -127 (clamped) .. 127 */
        if (sc > 127 - emax - 1)
            sc = 127 - emax - 1;
        if (mxt_next(s) % 4 == 0)
            sc = -127;
        for (size_t i = 0; i < n; i++) {
            int k = (int)(mxt_next(s) % (unsigned)(ng - 1));
            double x = mxt_next(s) % 3 ? (g[k] + g[k + 1]) / 2 : g[k]; /* tie or grid point */
            v[i] = rnd_sign(s, (float)ldexp(x, sc));
        }
        if (sc > -127) /* fix s: an element in the top binade [2^emax, 2^(emax+1)) */
            v[mxt_next(s) % n] = rnd_sign(
                s, (float)ldexp(1.0 + (double)(mxt_next(s) % (1u << 23)) * 0x1p-23, emax + sc));
        break;
    }
    case 7: /* one special value among random ones */
        for (size_t i = 0; i < n; i++)
            v[i] = (float)(base * tu_uniform(s, -1.0, 1.0));
        {
            const float sp[] = {INFINITY, -INFINITY, NAN, -NAN};
            v[mxt_next(s) % n] = sp[mxt_next(s) % 4];
        }
        break;
    case 8: /* zeros, or near the float range limits */
        for (size_t i = 0; i < n; i++)
            v[i] = (mxt_next(s) & 1) ? -0.0f : 0.0f;
        if (mxt_next(s) & 1)
            for (size_t i = 0; i < n; i++)
                v[i] = rnd_sign(s, (float)(FLT_MAX * tu_uniform(s, 0.0, 1.0)));
        break;
    default: /* near saturation: max normal * 2^sc * (1 +- tiny) */
    {
        int sc = (int)(mxt_next(s) % 200) - 100;
        double mn = mx_format_max_normal(f);
        for (size_t i = 0; i < n; i++)
            v[i] = rnd_sign(s, (float)ldexp(mn * (1.0 + tu_uniform(s, -0.05, 0.05)), sc));
        break;
    }
    }
}

static void fill_tensor(float *x, size_t rows, size_t cols, mx_format f, uint64_t *s) {
    for (size_t r = 0; r < rows; r++)
        for (size_t j = 0; j < cols; j += 32)
            fill_block(x + r * cols + j, cols - j < 32 ? cols - j : 32, f, s);
}

/* Every format x rounding: fake quant, quantize, dequantize, in-place fake quant vs reference.
 * rows*blocks = 900 > MX_PARALLEL_MIN_BLOCKS, so the OpenMP path runs. */
static void test_random_vs_reference(void **state) {
    (void)state;
    const size_t rows = 225, cols = 100, n = rows * cols, nb = rows * mx_num_blocks(cols);
    float *in = malloc(n * 4), *out = malloc(n * 4), *ref = malloc(n * 4), *tmp = malloc(n * 4);
    uint8_t *codes = malloc(n), *ref_codes = malloc(n), *sc = malloc(nb), *ref_sc = malloc(nb);
    for (int f = MX_INT8; f < MX_FORMAT_COUNT; f++) {
        uint64_t seed = 1000 + (uint64_t)f;
        fill_tensor(in, rows, cols, (mx_format)f, &seed);
        size_t ties = 0;
        for (int r = 0; r < 2; r++) {
            char what[64];
            snprintf(what, sizeof what, "%s %s", mx_format_name((mx_format)f),
                     r ? "nearest" : "even");
            mxr_quantize(in, ref_codes, ref_sc, ref, rows, cols, (mx_format)f, (mx_rounding)r);
            mx_fake_quant(in, out, rows, cols, (mx_format)f, (mx_rounding)r);
            assert_true(mxt_same_floats(what, out, ref, n));
            mx_quantize(in, codes, sc, rows, cols, (mx_format)f, (mx_rounding)r);
            assert_true(mxt_same_bytes(what, codes, ref_codes, n));
            assert_true(mxt_same_bytes(what, sc, ref_sc, nb));
            mx_dequantize(codes, sc, tmp, rows, cols, (mx_format)f);
            assert_true(mxt_same_floats(what, tmp, out, n)); /* bit-identical to fake quant */
            memcpy(tmp, in, n * 4);
            mx_fake_quant(tmp, tmp, rows, cols, (mx_format)f, (mx_rounding)r);
            assert_true(mxt_same_floats(what, tmp, out, n)); /* in == out */
        }
        /* ties are where the modes differ: make sure the data had plenty */
        mx_fake_quant(in, out, rows, cols, (mx_format)f, MX_ROUND_NEAREST);
        mx_fake_quant(in, tmp, rows, cols, (mx_format)f, MX_ROUND_EVEN);
        for (size_t i = 0; i < n; i++)
            ties += out[i] != tmp[i] && !isnan(out[i]);
        if (ties < 500) {
            print_error("%s: only %zu ties in the random data\n", mx_format_name((mx_format)f),
                        ties);
            fail();
        }
    }
    free(in);
    free(out);
    free(ref);
    free(tmp);
    free(codes);
    free(ref_codes);
    free(sc);
    free(ref_sc);
}

/* Random bit patterns (any float at all) through fake quant vs reference, and odd shapes. */
static void test_random_bits(void **state) {
    (void)state;
    const size_t shapes[][2] = {{1, 1}, {7, 3}, {3, 33}, {2, 95}, {50, 64}, {1, 1000}};
    uint64_t seed = 99;
    for (size_t t = 0; t < sizeof shapes / sizeof shapes[0]; t++) {
        const size_t rows = shapes[t][0], cols = shapes[t][1], n = rows * cols;
        float *in = malloc(n * 4), *out = malloc(n * 4), *ref = malloc(n * 4);
        uint8_t *codes = malloc(n), *sc = malloc(rows * mx_num_blocks(cols));
        for (size_t i = 0; i < n; i++) {
            uint32_t u = (uint32_t)mxt_next(&seed);
            if ((u & 0x7f800000u) == 0x7f800000u) /* keep most blocks finite */
                u &= 0xbfffffffu;
            memcpy(&in[i], &u, 4);
        }
        for (int f = MX_INT8; f < MX_FORMAT_COUNT; f++)
            for (int r = 0; r < 2; r++) {
                mx_fake_quant(in, out, rows, cols, (mx_format)f, (mx_rounding)r);
                mxr_quantize(in, codes, sc, ref, rows, cols, (mx_format)f, (mx_rounding)r);
                assert_true(mxt_same_floats(mx_format_name((mx_format)f), out, ref, n));
            }
        free(in);
        free(out);
        free(ref);
        free(codes);
        free(sc);
    }
}

/* Every block exponent s from -127 (clamped) to 127 - emax, for every format and mode: a block
 * whose amax fixes s, holding ties, grid points and random values at that scale. This crosses
 * the kernel's switch between rounding on the scaled grid and scaling to the element grid. */
static void test_every_block_exponent(void **state) {
    (void)state;
    double g[300];
    for (int f = MX_INT8; f < MX_FORMAT_COUNT; f++) {
        const int emax = mx_format_emax((mx_format)f), ng = grid_of((mx_format)f, g);
        const size_t cols = 32, rows = (size_t)(127 - emax + 128), n = rows * cols;
        float *in = malloc(n * 4), *out = malloc(n * 4), *ref = malloc(n * 4);
        uint8_t *codes = malloc(n), *sc = malloc(rows);
        uint64_t seed = 31 + (uint64_t)f;
        for (size_t r = 0; r < rows; r++) {
            const int s = (int)r - 127;
            float *v = in + r * cols;
            for (size_t i = 0; i < cols; i++) {
                int k = (int)(mxt_next(&seed) % (unsigned)(ng - 1));
                double x = i % 3 == 0   ? (g[k] + g[k + 1]) / 2
                           : i % 3 == 1 ? g[k]
                                        : tu_uniform(&seed, 0, g[ng - 1]);
                v[i] = rnd_sign(&seed, (float)ldexp(x, s));
            }
            v[0] = (float)ldexp(1.5, emax + s); /* amax in [2^(emax+s), 2^(emax+s+1)) */
        }
        for (int r = 0; r < 2; r++) {
            mx_fake_quant(in, out, rows, cols, (mx_format)f, (mx_rounding)r);
            mxr_quantize(in, codes, sc, ref, rows, cols, (mx_format)f, (mx_rounding)r);
            assert_true(mxt_same_floats(mx_format_name((mx_format)f), out, ref, n));
            for (size_t k = 0; k < rows; k++)
                assert_int_equal(sc[k], k);
        }
        free(in);
        free(out);
        free(ref);
        free(codes);
        free(sc);
    }
}

int mxt_run_random(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_vs_reference),
        cmocka_unit_test(test_random_bits),
        cmocka_unit_test(test_every_block_exponent),
    };
    return cmocka_run_group_tests_name("mx_random", tests, NULL, NULL);
}
