/* Modulated deformable bilinear sampling ("im2col with offsets and mask") for ONNX DeformConv
 * semantics (one offset group), channels-last, so that the GEMM that follows is one MatMul.
 *
 * Only the CPython C API: arrays arrive through the buffer protocol, so the build needs no
 * numpy headers (a build-time numpy would be a build dependency that pins the numpy ABI and
 * that a device without a wheel cannot build) and one binary works with numpy 1.x and 2.x.
 * Plain C: the per-channel loop is a 4-term multiply-add over contiguous, non-aliasing rows
 * that gcc -O3 vectorises on x86-64 (SSE2) and aarch64 (NEON) alike.
 *
 * sample(x, offset, mask, cols, n, h, w, c, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw, threads)
 *   x      float32 [n, h, w, c]              (NHWC)
 *   offset float32 [n, 2*kh*kw, oh, ow]      (ONNX layout: (dy, dx) per tap)
 *   mask   float32 [n, kh*kw, oh, ow] or None
 *   cols   float32 [n, oh*ow, kh*kw*c]       (written: pixel-major, then tap, then channel)
 * sample(..., threads, scale, zero_point): cols is uint8, each value quantized as ONNX
 *   QuantizeLinear does (round half to even, saturate to [0, 255]; x * (1/scale) for x / scale)
 * sample(..., threads, scale, zero_point, off_spec, mask_spec): a spec (not None) makes the
 *   offset (mask) uint8 [n, channels, oh, ow], read at its channels base.. as
 *   spec = (table, scale, zero_point, base, channels): each byte through `table` (float32
 *   [256]: the per-value ops between a quantized tensor and the DeformConv input, e.g. a
 *   Sigmoid between Q/DQ pairs, as one lookup), or with table None as DequantizeLinear gives
 *   it, (byte - zero_point) * scale (a scale of 0 for the columns: float columns)
 * sample(..., mask_spec, row0, rows): only output rows [row0, row0 + rows) of each image, into
 *   cols [n, rows*ow, kh*kw*c] (the GEMM after it can then run a band at a time)
 * to_nhwc(src, dst, n, c, h, w, threads): [n, c, h, w] -> [n, h, w, c]
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_THREADS 64
/* A thread costs ~10-20 us to start and join; below this many output values per thread
 * (about 15 us of sampling at ~0.5 ns a value) the split would cost more than it saves. */
#define MIN_VALUES_PER_THREAD 32768L

typedef struct {
    const float *x, *off, *mask;
    const unsigned char *off8, *mask8; /* uint8 offsets / mask instead, planar */
    const float *otab, *mtab;          /* byte -> value (256 entries), or NULL: */
    float oscale, ozp, mscale, mzp;    /* (byte - zp) * scale */
    long obase, ochannels, mbase, mchannels; /* the channels read, of how many */
    float *out;
    unsigned char *out8; /* quantized columns instead of `out` when not NULL */
    float qinv, qzp;     /* value -> round(value * qinv + qzp), clamped to [0, 255] */
    volatile int *failed; /* set by a worker that could not allocate its scratch */
    long n, h, w, c, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw;
    long row0, rows; /* the output rows sampled: [row0, row0 + rows) of each image */
    long q0, q1;     /* this worker's range of work items */
} job_t;

typedef void (*work_fn)(const job_t *);

/* Pixels per tile: the corner indices and weights of one tap for a run of pixels of one
 * output row are computed in one branch-free loop that gcc vectorises; at 14 channels this
 * per-tap set-up is as much work as the sampling itself when done per pixel. */
#define TILE 32

/* Corner indices (element offsets into the NHWC image) and weights (mask folded in) of tap
 * (i, jj) for the `len` pixels from output (oy, ox0). A corner outside the image gets weight
 * 0 and an index clamped into it, so every read stays in bounds: samples outside (-1, h) x
 * (-1, w) are zero, as in ONNX Runtime and torchvision. */
static inline __attribute__((always_inline)) void tap_corners(
    const job_t *j, const float *restrict offy, const float *restrict offx,
    const float *restrict mask, long oy, long ox0, long i, long jj, int len, long c,
    int (*restrict idx)[TILE], float (*restrict wt)[TILE])
{
    const float hf = (float)j->h, wf = (float)j->w;
    const int hi = (int)j->h, wi = (int)j->w;
    const float by = (float)(oy * j->sh - j->ph + i * j->dh);
    const float bx0 = (float)(ox0 * j->sw - j->pw + jj * j->dw);
    const float sw = (float)j->sw;
    for (int t = 0; t < len; t++) {
        float y = by + offy[t], x = bx0 + sw * (float)t + offx[t];
        const float m = mask[t];
        /* clamp into [-1, h] (NaN -> -1): beyond it every corner is outside anyway */
        y = y > -1.0f ? y : -1.0f;
        y = y < hf ? y : hf;
        x = x > -1.0f ? x : -1.0f;
        x = x < wf ? x : wf;
        /* y + 1 >= 0, so truncation is floor */
        const int y0 = (int)(y + 1.0f) - 1, x0 = (int)(x + 1.0f) - 1;
        const int y1 = y0 + 1, x1 = x0 + 1;
        const float ly = y - (float)y0, lx = x - (float)x0;
        /* validity as 0/1 factors, not float selects: gcc does not if-convert (so does not
         * vectorise) a select whose arm does arithmetic that could trap */
        const float vy0 = (1.0f - ly) * m * (float)((y0 >= 0) & (y0 < hi));
        const float vy1 = ly * m * (float)(y1 < hi);
        const float vx0 = (1.0f - lx) * (float)((x0 >= 0) & (x0 < wi));
        const float vx1 = lx * (float)(x1 < wi);
        const int cy0 = y0 < 0 ? 0 : (y0 >= hi ? hi - 1 : y0);
        const int cy1 = y1 >= hi ? hi - 1 : y1;
        const int cx0 = x0 < 0 ? 0 : (x0 >= wi ? wi - 1 : x0);
        const int cx1 = x1 >= wi ? wi - 1 : x1;
        idx[0][t] = (cy0 * wi + cx0) * (int)c;
        idx[1][t] = (cy0 * wi + cx1) * (int)c;
        idx[2][t] = (cy1 * wi + cx0) * (int)c;
        idx[3][t] = (cy1 * wi + cx1) * (int)c;
        wt[0][t] = vy0 * vx0;
        wt[1][t] = vy0 * vx1;
        wt[2][t] = vy1 * vx0;
        wt[3][t] = vy1 * vx1;
    }
}

/* `len` uint8 values as the float the DeformConv reads: through `table`, or as
 * DequantizeLinear gives them, (q - zp) * scale, the same float ONNX Runtime computes. */
static inline __attribute__((always_inline)) void from_bytes(
    float *restrict f, const unsigned char *restrict q, int len, const float *restrict table,
    float scale, float zp)
{
    if (table)
        for (int t = 0; t < len; t++)
            f[t] = table[q[t]];
    else
        for (int t = 0; t < len; t++)
            f[t] = ((float)q[t] - zp) * scale;
}

/* One tap of one pixel: the weighted sum of the four corners' channel vectors. Function
 * parameters, so that `restrict` spares gcc a run-time aliasing check per call. */
static inline __attribute__((always_inline)) void blend4(
    float *restrict o, const float *restrict a, const float *restrict b,
    const float *restrict d, const float *restrict e, float w00, float w01, float w10,
    float w11, long c)
{
    for (long ch = 0; ch < c; ch++)
        o[ch] = w00 * a[ch] + w01 * b[ch] + w10 * d[ch] + w11 * e[ch];
}

/* Float values -> uint8, as ONNX QuantizeLinear (round half to even, saturate): one long
 * loop over a tile's columns. Adding 1.5 * 2^23 rounds (ties to even, the default mode) and
 * leaves the integer in the float's low mantissa bits; the clamp is done on int16, which
 * SSE2 and NEON both have min/max for (float or int32 clamps compiled to mask juggling on
 * SSE2: 0.64 and 0.37 ns a value, this 0.20). Exact for |value * inv + zp| < 2^15; columns
 * of a DeformConv input quantized with its own scale stay in [-1, 256]. */
static inline __attribute__((always_inline)) void quantize_u8(
    unsigned char *restrict o, const float *restrict v, long count, float inv, float zp)
{
    for (long i = 0; i < count; i++) {
        float f = v[i] * inv + zp + 12582912.0f;
        int32_t bits;
        memcpy(&bits, &f, sizeof bits);
        int16_t q = (int16_t)(bits - 0x4B400000);
        q = q < 0 ? 0 : q;
        q = q > 255 ? 255 : q;
        o[i] = (unsigned char)q;
    }
}

/* Work item q = image * (rows * ow) + output pixel from row0: all taps and channels of one
 * pixel, written at columns row q.
 * Inlined with a constant channel count for FeatherFace's 14, 28 and 56, the per-channel loop
 * is unrolled and its remainder resolved at compile time. */
static inline __attribute__((always_inline)) void sample_range_c(const job_t *j, const long c,
                                                                 float *scratch)
{
    const int u8 = scratch != NULL; /* float columns of a tile, then quantized into out8 */
    const long p_count = j->oh * j->ow, k_count = j->kh * j->kw;
    const long row = k_count * c, sampled = j->rows * j->ow;
    int idx[4][TILE];
    float wt[4][TILE];
    float ones[TILE]; /* the mask when there is none */
    for (int t = 0; t < TILE; t++)
        ones[t] = 1.0f;
    long q = j->q0;
    while (q < j->q1) {
        const long img = q / sampled, p = j->row0 * j->ow + q % sampled;
        const long oy = p / j->ow, ox0 = p % j->ow;
        long len = j->ow - ox0; /* the tile stays in one output row */
        if (len > TILE)
            len = TILE;
        if (len > j->q1 - q)
            len = j->q1 - q;
        const float *x = j->x + img * j->h * j->w * c;
        const float *off = j->off8 ? NULL : j->off + img * 2 * k_count * p_count + p;
        const float *mask = j->mask ? j->mask + img * k_count * p_count + p : NULL;
        /* the tap's planes of uint8 offsets / mask */
        const unsigned char *off8 =
            j->off8 ? j->off8 + (img * j->ochannels + j->obase) * p_count + p : NULL;
        const unsigned char *mask8 =
            j->mask8 ? j->mask8 + (img * j->mchannels + j->mbase) * p_count + p : NULL;
        float deq[3][TILE]; /* a uint8 tap's dy, dx, mask as float */
        float *out = u8 ? scratch : j->out + q * row;
        for (long i = 0; i < j->kh; i++) {
            for (long jj = 0; jj < j->kw; jj++) {
                const long k = i * j->kw + jj;
                const float *dy = off ? off + 2 * k * p_count : deq[0];
                const float *dx = off ? off + (2 * k + 1) * p_count : deq[1];
                const float *m = mask ? mask + k * p_count : mask8 ? deq[2] : ones;
                if (off8) {
                    from_bytes(deq[0], off8 + 2 * k * p_count, (int)len, j->otab, j->oscale,
                               j->ozp);
                    from_bytes(deq[1], off8 + (2 * k + 1) * p_count, (int)len, j->otab,
                               j->oscale, j->ozp);
                }
                if (mask8)
                    from_bytes(deq[2], mask8 + k * p_count, (int)len, j->mtab, j->mscale,
                               j->mzp);
                tap_corners(j, dy, dx, m, oy, ox0, i, jj, (int)len, c, idx, wt);
                for (long t = 0; t < len; t++)
                    blend4(out + t * row + k * c, x + idx[0][t], x + idx[1][t], x + idx[2][t],
                           x + idx[3][t], wt[0][t], wt[1][t], wt[2][t], wt[3][t], c);
            }
        }
        if (u8)
            quantize_u8(j->out8 + q * row, scratch, len * row, j->qinv, j->qzp);
        q += len;
    }
}

static inline __attribute__((always_inline)) void sample_range_with(const job_t *j,
                                                                   float *scratch)
{
    switch (j->c) {
    case 14:
        sample_range_c(j, 14, scratch);
        break;
    case 28:
        sample_range_c(j, 28, scratch);
        break;
    case 56:
        sample_range_c(j, 56, scratch);
        break;
    default:
        sample_range_c(j, j->c, scratch);
    }
}

/* On x86-64 with glibc the hot loops are also compiled for x86-64-v3 (AVX2 + FMA: 8 floats
 * a vector, a * b + c in one instruction), picked at load time by the CPU (an ifunc); other
 * CPUs, and the portable twin on x86-64, run the baseline build (SSE2; NEON on aarch64).
 * Measured on a 2-core AVX2 EPYC (thread CPU, V1's 15 samplings a frame): uint8 columns
 * 2.03 against 3.29 ms, float 1.58 against 2.34 ms. gcc >= 12 only: its dispatcher tests
 * the ISA level (__builtin_cpu_supports("x86-64-v3")); other compilers build the twin. */
#if defined(__x86_64__) && defined(__GLIBC__) && defined(__GNUC__) && !defined(__clang__) && \
    __GNUC__ >= 12 && !defined(EDGEFACE_DCN_NO_CLONES)
#define HOT_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define HOT_CLONES
#endif

HOT_CLONES static void sample_range(const job_t *j)
{
    sample_range_with(j, NULL);
}

/* A tile's float columns (TILE * kh * kw * c floats: 63 KB at 56 channels) on the heap of
 * the worker; on allocation failure the range is left unwritten and `failed` set. */
HOT_CLONES static void sample_range_u8(const job_t *j)
{
    float *scratch = malloc(sizeof(float) * TILE * j->kh * j->kw * j->c);
    if (scratch == NULL) {
        *j->failed = 1;
        return;
    }
    sample_range_with(j, scratch);
    free(scratch);
}

/* Work item q = image * h + row: one input row of all channels. */
static void transpose_range(const job_t *j)
{
    const long hw = j->h * j->w;
    for (long q = j->q0; q < j->q1; q++) {
        const long img = q / j->h, y = q % j->h;
        const float *src = j->x + img * j->c * hw + y * j->w;
        float *dst = j->out + (img * hw + y * j->w) * j->c;
        for (long xx = 0; xx < j->w; xx++)
            for (long ch = 0; ch < j->c; ch++)
                dst[xx * j->c + ch] = src[ch * hw + xx];
    }
}

typedef struct {
    job_t job;
    work_fn fn;
} task_t;

static void *task_main(void *arg)
{
    task_t *t = (task_t *)arg;
    t->fn(&t->job);
    return NULL;
}

/* Split [0, items) into `threads` contiguous ranges; the calling thread runs the last one.
 * Returns 0, or -1 if a thread could not be started (its range then runs here). */
static int run_parallel(work_fn fn, const job_t *base, long items, long threads)
{
    task_t tasks[MAX_THREADS];
    pthread_t ids[MAX_THREADS];
    int started[MAX_THREADS];
    int rc = 0;
    if (threads < 1)
        threads = 1;
    if (threads > items)
        threads = items > 0 ? items : 1;
    for (long t = 0; t < threads; t++) {
        tasks[t].job = *base;
        tasks[t].fn = fn;
        tasks[t].job.q0 = items * t / threads;
        tasks[t].job.q1 = items * (t + 1) / threads;
        started[t] = 0;
    }
    for (long t = 0; t + 1 < threads; t++)
        started[t] = pthread_create(&ids[t], NULL, task_main, &tasks[t]) == 0;
    fn(&tasks[threads - 1].job);
    for (long t = 0; t + 1 < threads; t++) {
        if (started[t])
            pthread_join(ids[t], NULL);
        else {
            fn(&tasks[t].job);
            rc = -1;
        }
    }
    return rc;
}

static long clamp_threads(long threads, long values)
{
    long most = values / MIN_VALUES_PER_THREAD;
    if (threads > most)
        threads = most;
    if (threads > MAX_THREADS)
        threads = MAX_THREADS;
    return threads < 1 ? 1 : threads;
}

static int check_bytes(const Py_buffer *b, long count, long size, const char *name)
{
    if (b->len != (Py_ssize_t)(count * size)) {
        PyErr_Format(PyExc_ValueError, "%s has %zd bytes, expected %ld %s values", name,
                     b->len, count, size == 1 ? "uint8" : "float32");
        return -1;
    }
    return 0;
}

static int check_len(const Py_buffer *b, long count, const char *name)
{
    return check_bytes(b, count, (long)sizeof(float), name);
}

/* A uint8 input's spec, (table or None, scale, zero_point, base, channels), into the job's
 * fields; its buffers are checked against `count` channels of `pixels` each. Returns 1 when
 * `table` was taken (to release), 0 without one, -1 with an exception set. */
static int parse_spec(PyObject *spec, const Py_buffer *data, Py_buffer *table, long pixels,
                      long count, const char *name, const float **tab, float *scale,
                      float *zp, long *base, long *channels)
{
    PyObject *table_obj;
    double s, z;
    int have_table = 0;
    if (!PyArg_ParseTuple(spec, "Oddll", &table_obj, &s, &z, base, channels))
        return -1;
    if (table_obj != Py_None) {
        if (PyObject_GetBuffer(table_obj, table, PyBUF_C_CONTIGUOUS) < 0)
            return -1;
        have_table = 1;
        if (check_len(table, 256, name) < 0)
            goto fail;
        *tab = table->buf;
    } else if (!(s > 0.0) || z < 0.0 || z > 255.0) {
        PyErr_Format(PyExc_ValueError, "%s: scale > 0, zero point in [0, 255]", name);
        return -1;
    }
    if (*base < 0 || *channels < 1 || *base + count > *channels) {
        PyErr_Format(PyExc_ValueError, "%s: channels %ld..%ld of %ld", name, *base,
                     *base + count, *channels);
        goto fail;
    }
    if (check_bytes(data, pixels * *channels, 1, name) < 0)
        goto fail;
    *scale = (float)s;
    *zp = (float)z;
    return have_table;
fail:
    if (have_table)
        PyBuffer_Release(table);
    return -1;
}

static PyObject *py_sample(PyObject *self, PyObject *args)
{
    Py_buffer x, off, out, mask, otab, mtab;
    PyObject *mask_obj, *ospec = Py_None, *mspec = Py_None;
    job_t j;
    long threads, k_count, p_count;
    PyObject *ret = NULL;
    int have_mask = 0, have_otab = 0, have_mtab = 0;
    double qscale = 0.0, qzp = 0.0;
    volatile int failed = 0;
    (void)self;
    memset(&j, 0, sizeof(j));
    j.rows = -1;
    if (!PyArg_ParseTuple(args, "y*y*Ow*lllllllllllllll|ddOOll", &x, &off, &mask_obj, &out,
                          &j.n, &j.h, &j.w, &j.c, &j.oh, &j.ow, &j.kh, &j.kw, &j.sh, &j.sw,
                          &j.ph, &j.pw, &j.dh, &j.dw, &threads, &qscale, &qzp, &ospec, &mspec,
                          &j.row0, &j.rows))
        return NULL;
    if (j.rows == -1)
        j.rows = j.oh - j.row0;
    if (mask_obj != Py_None) {
        if (PyObject_GetBuffer(mask_obj, &mask, PyBUF_C_CONTIGUOUS) < 0)
            goto done;
        have_mask = 1;
    }
    if (j.n < 1 || j.h < 1 || j.w < 1 || j.c < 1 || j.oh < 1 || j.ow < 1 || j.kh < 1 ||
        j.kw < 1 || j.sh < 1 || j.sw < 1 || j.dh < 1 || j.dw < 1 || j.ph < 0 || j.pw < 0) {
        PyErr_SetString(PyExc_ValueError, "sizes, strides and dilations must be >= 1, pads >= 0");
        goto done;
    }
    if (j.row0 < 0 || j.rows < 1 || j.row0 + j.rows > j.oh) {
        PyErr_Format(PyExc_ValueError, "rows %ld..%ld of %ld", j.row0, j.row0 + j.rows, j.oh);
        goto done;
    }
    if (qscale < 0.0 || (qscale > 0.0 && (qzp < 0.0 || qzp > 255.0))) {
        PyErr_SetString(PyExc_ValueError, "quantization: scale > 0, zero point in [0, 255]");
        goto done;
    }
    if (mspec != Py_None && !have_mask) {
        PyErr_SetString(PyExc_ValueError, "a mask spec without a mask");
        goto done;
    }
    k_count = j.kh * j.kw;
    p_count = j.oh * j.ow;
    if (check_len(&x, j.n * j.h * j.w * j.c, "x") < 0 ||
        check_bytes(&out, j.n * j.rows * j.ow * k_count * j.c,
                    qscale > 0.0 ? 1 : (long)sizeof(float), "cols") < 0)
        goto done;
    if (ospec != Py_None) {
        have_otab = parse_spec(ospec, &off, &otab, j.n * p_count, 2 * k_count, "offset",
                               &j.otab, &j.oscale, &j.ozp, &j.obase, &j.ochannels);
        if (have_otab < 0) {
            have_otab = 0;
            goto done;
        }
        j.off8 = off.buf;
    } else if (check_len(&off, j.n * 2 * k_count * p_count, "offset") < 0)
        goto done;
    else
        j.off = off.buf;
    if (mspec != Py_None) {
        have_mtab = parse_spec(mspec, &mask, &mtab, j.n * p_count, k_count, "mask", &j.mtab,
                               &j.mscale, &j.mzp, &j.mbase, &j.mchannels);
        if (have_mtab < 0) {
            have_mtab = 0;
            goto done;
        }
        j.mask8 = mask.buf;
    } else if (have_mask && check_len(&mask, j.n * k_count * p_count, "mask") < 0)
        goto done;
    else
        j.mask = have_mask ? mask.buf : NULL;
    j.x = x.buf;
    if (qscale > 0.0) {
        j.out8 = out.buf;
        j.qinv = (float)(1.0 / qscale);
        j.qzp = (float)qzp;
    } else
        j.out = out.buf;
    j.failed = &failed;
    threads = clamp_threads(threads, j.n * j.rows * j.ow * k_count * j.c);
    Py_BEGIN_ALLOW_THREADS
    run_parallel(qscale > 0.0 ? sample_range_u8 : sample_range, &j, j.n * j.rows * j.ow,
                 threads);
    Py_END_ALLOW_THREADS
    if (failed) {
        PyErr_NoMemory();
        goto done;
    }
    Py_INCREF(Py_None);
    ret = Py_None;
done:
    if (have_mtab)
        PyBuffer_Release(&mtab);
    if (have_otab)
        PyBuffer_Release(&otab);
    if (have_mask)
        PyBuffer_Release(&mask);
    PyBuffer_Release(&x);
    PyBuffer_Release(&off);
    PyBuffer_Release(&out);
    return ret;
}

static PyObject *py_to_nhwc(PyObject *self, PyObject *args)
{
    Py_buffer src, dst;
    job_t j;
    long threads;
    PyObject *ret = NULL;
    (void)self;
    memset(&j, 0, sizeof(j));
    if (!PyArg_ParseTuple(args, "y*w*lllll", &src, &dst, &j.n, &j.c, &j.h, &j.w, &threads))
        return NULL;
    if (j.n < 1 || j.c < 1 || j.h < 1 || j.w < 1) {
        PyErr_SetString(PyExc_ValueError, "sizes must be >= 1");
        goto done;
    }
    if (check_len(&src, j.n * j.c * j.h * j.w, "src") < 0 ||
        check_len(&dst, j.n * j.c * j.h * j.w, "dst") < 0)
        goto done;
    j.x = src.buf;
    j.out = dst.buf;
    threads = clamp_threads(threads, j.n * j.c * j.h * j.w);
    Py_BEGIN_ALLOW_THREADS
    run_parallel(transpose_range, &j, j.n * j.h, threads);
    Py_END_ALLOW_THREADS
    Py_INCREF(Py_None);
    ret = Py_None;
done:
    PyBuffer_Release(&src);
    PyBuffer_Release(&dst);
    return ret;
}

static PyMethodDef methods[] = {
    {"sample", py_sample, METH_VARARGS,
     "sample(x, offset, mask, cols, n, h, w, c, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw, "
     "threads[, scale, zero_point[, off_spec, mask_spec[, row0, rows]]]): modulated "
     "deformable bilinear "
     "sampling, NHWC x -> cols [n, oh*ow, kh*kw*c] (float32, or uint8 quantized with scale "
     "and zero_point); offset and mask float32 [n, 2K|K, oh, ow], or with a spec (table or "
     "None, scale, zero_point, base, channels) uint8 [n, channels, oh, ow] read from channel "
     "base through the table, or as (byte - zero_point) * scale."},
    {"to_nhwc", py_to_nhwc, METH_VARARGS,
     "to_nhwc(src, dst, n, c, h, w, threads): float32 NCHW -> NHWC."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_sampler",
    "Deformable-convolution sampling kernels (see edgeface.inference.dcn).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__sampler(void)
{
    return PyModule_Create(&module);
}
