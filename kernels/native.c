/* kernels._native: exact re-scoring of candidate rows of a float16 matrix.
 *
 * The re-rank reads ~100 rows per query at random from a memory-mapped file much larger than
 * the CPU caches, so one row at a time it waits on memory for each row. This scores a query's
 * candidates in order while prefetching the rows of the candidates PREFETCH_AHEAD further on,
 * so the loads of several rows overlap, and keeps each query's k best in a small sorted array.
 * The vector arithmetic uses AVX2, F16C and FMA where the CPU has them (checked at run time)
 * and portable C otherwise (or when PITH_NATIVE_PORTABLE=1 at import, for tests). No Python
 * objects are touched while scoring, so the GIL is released.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define PITH_X86 1
#endif

#define PREFETCH_AHEAD 6

typedef float (*score_fn)(const float *q, const uint16_t *r, Py_ssize_t d, int l2);

static float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    uint32_t bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: normalise */
            exp = 127 - 15 + 1;
            while ((man & 0x400) == 0) {
                man <<= 1;
                exp--;
            }
            bits = sign | (exp << 23) | ((man & 0x3ff) << 13);
        }
    } else if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static float score_portable(const float *q, const uint16_t *r, Py_ssize_t d, int l2) {
    float acc = 0.0f;
    for (Py_ssize_t i = 0; i < d; i++) {
        float v = half_to_float(r[i]);
        acc += l2 ? (q[i] - v) * (q[i] - v) : q[i] * v;
    }
    return acc;
}

static void prefetch_row(const uint16_t *r, Py_ssize_t d) {
#if PITH_X86
    const char *p = (const char *)r;
    for (Py_ssize_t off = 0; off < d * 2; off += 64) {
        _mm_prefetch(p + off, _MM_HINT_T0);
    }
#else
    (void)r;
    (void)d;
#endif
}

#if PITH_X86
__attribute__((target("avx2,fma,f16c"))) static float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}

__attribute__((target("avx2,fma,f16c"))) static float score_avx2(const float *q,
                                                                  const uint16_t *r,
                                                                  Py_ssize_t d, int l2) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    Py_ssize_t i = 0;
    for (; i + 16 <= d; i += 16) {
        __m256 v0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(r + i)));
        __m256 v1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(r + i + 8)));
        __m256 q0 = _mm256_loadu_ps(q + i), q1 = _mm256_loadu_ps(q + i + 8);
        if (l2) {
            v0 = _mm256_sub_ps(q0, v0);
            v1 = _mm256_sub_ps(q1, v1);
            a0 = _mm256_fmadd_ps(v0, v0, a0);
            a1 = _mm256_fmadd_ps(v1, v1, a1);
        } else {
            a0 = _mm256_fmadd_ps(q0, v0, a0);
            a1 = _mm256_fmadd_ps(q1, v1, a1);
        }
    }
    float acc = hsum(_mm256_add_ps(a0, a1));
    for (; i < d; i++) {
        float v = _cvtsh_ss(r[i]);
        acc += l2 ? (q[i] - v) * (q[i] - v) : q[i] * v;
    }
    return acc;
}
#endif

static score_fn pick_score(void) {
#if PITH_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
        __builtin_cpu_supports("f16c")) {
        return score_avx2;
    }
#endif
    return score_portable;
}

static score_fn SCORE;

/* Keeps the k best (score, id) pairs seen so far, best first; ties keep the earlier one. */
static void keep_best(float *bs, int64_t *br, Py_ssize_t *filled, Py_ssize_t k, float s,
                      int64_t id, int l2) {
    Py_ssize_t pos = *filled;
    while (pos > 0 && (l2 ? s < bs[pos - 1] : s > bs[pos - 1])) pos--;
    if (pos >= k) return;
    Py_ssize_t last = *filled < k ? *filled : k - 1;
    for (Py_ssize_t t = last; t > pos; t--) {
        bs[t] = bs[t - 1];
        br[t] = br[t - 1];
    }
    bs[pos] = s;
    br[pos] = id;
    if (*filled < k) (*filled)++;
}

/* For each query i: the ids ids[i, j] of the k best of its candidate rows rows[i, :c] (rows < 0
 * are skipped) by inner product, or by squared L2 distance when l2, best first; unfilled places
 * get the id -1 and the score -inf (ip) or +inf (l2). */
static void rerank_rows(const float *xq, Py_ssize_t nq, Py_ssize_t d, const uint16_t *base,
                        const int64_t *rows, const int64_t *ids, Py_ssize_t c, Py_ssize_t k,
                        int l2, float *out_s, int64_t *out_r) {
    const float missing = l2 ? INFINITY : -INFINITY;
    for (Py_ssize_t i = 0; i < nq; i++) {
        const float *q = xq + i * d;
        const int64_t *ri = rows + i * c;
        float *bs = out_s + i * k;
        int64_t *br = out_r + i * k;
        Py_ssize_t filled = 0;
        for (Py_ssize_t j = 0; j < c && j < PREFETCH_AHEAD; j++) {
            if (ri[j] >= 0) prefetch_row(base + ri[j] * d, d);
        }
        for (Py_ssize_t j = 0; j < c; j++) {
            Py_ssize_t ahead = j + PREFETCH_AHEAD;
            if (ahead < c) {
                if (ri[ahead] >= 0) prefetch_row(base + ri[ahead] * d, d);
            } else if (i + 1 < nq && ahead - c < c) { /* the next query's first rows */
                int64_t nr = rows[(i + 1) * c + (ahead - c)];
                if (nr >= 0) prefetch_row(base + nr * d, d);
            }
            if (ri[j] < 0) continue;
            keep_best(bs, br, &filled, k, SCORE(q, base + ri[j] * d, d, l2), ids[i * c + j], l2);
        }
        for (Py_ssize_t t = filled; t < k; t++) {
            bs[t] = missing;
            br[t] = -1;
        }
    }
}

static int check_len(Py_buffer *b, const char *name, Py_ssize_t want) {
    if (b->len != want) {
        PyErr_Format(PyExc_ValueError, "rerank_f16: %s holds %zd bytes, expected %zd", name,
                     b->len, want);
        return -1;
    }
    return 0;
}

static PyObject *rerank_f16(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer q, base, rows, ids, out_s, out_r;
    Py_ssize_t nq, d, n, c, k;
    int l2;
    if (!PyArg_ParseTuple(args, "y*y*y*y*w*w*nnnnnp", &q, &base, &rows, &ids, &out_s, &out_r, &nq,
                          &d, &n, &c, &k, &l2))
        return NULL;
    PyObject *result = NULL;
    if (nq < 0 || d < 0 || n < 0 || c < 0 || k < 1) {
        PyErr_SetString(PyExc_ValueError, "rerank_f16: negative size or k < 1");
        goto done;
    }
    if (check_len(&q, "queries", nq * d * 4) || check_len(&base, "vectors", n * d * 2) ||
        check_len(&rows, "rows", nq * c * 8) || check_len(&ids, "ids", nq * c * 8) ||
        check_len(&out_s, "scores", nq * k * 4) || check_len(&out_r, "best ids", nq * k * 8)) {
        goto done;
    }
    const int64_t *r = (const int64_t *)rows.buf;
    for (Py_ssize_t i = 0; i < nq * c; i++) {
        if (r[i] >= n) {
            PyErr_Format(PyExc_IndexError, "rerank_f16: row %lld of %zd", (long long)r[i], n);
            goto done;
        }
    }
    Py_BEGIN_ALLOW_THREADS;
    rerank_rows((const float *)q.buf, nq, d, (const uint16_t *)base.buf, r,
                (const int64_t *)ids.buf, c, k, l2, (float *)out_s.buf, (int64_t *)out_r.buf);
    Py_END_ALLOW_THREADS;
    result = Py_None;
    Py_INCREF(result);
done:
    PyBuffer_Release(&q);
    PyBuffer_Release(&base);
    PyBuffer_Release(&rows);
    PyBuffer_Release(&ids);
    PyBuffer_Release(&out_s);
    PyBuffer_Release(&out_r);
    return result;
}

static PyObject *simd(PyObject *self, PyObject *args) {
    (void)self;
    (void)args;
#if PITH_X86
    if (SCORE == score_avx2) return PyUnicode_FromString("avx2+f16c");
#endif
    return PyUnicode_FromString("portable");
}

static PyMethodDef METHODS[] = {
    {"rerank_f16", rerank_f16, METH_VARARGS,
     "rerank_f16(queries, vectors, rows, ids, scores, best, nq, d, n, c, k, l2): for\n"
     "C-contiguous float32 queries (nq, d), float16 vectors (n, d), and int64 candidate rows\n"
     "and their ids (nq, c), writes the ids of each query's k best, best first, to int64 best\n"
     "(nq, k) and their inner products (or, l2, squared distances) to float32 scores (nq, k).\n"
     "Rows < 0 are skipped; unfilled places get id -1."},
    {"simd", simd, METH_NOARGS, "The instruction set the scoring loop uses."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef MODULE = {
    PyModuleDef_HEAD_INIT, "_native", NULL, -1, METHODS, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__native(void) {
    SCORE = pick_score();
    const char *portable = getenv("PITH_NATIVE_PORTABLE"); /* tests run the portable loop */
    if (portable != NULL && portable[0] == '1') SCORE = score_portable;
    return PyModule_Create(&MODULE);
}
