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
 * to_nhwc(src, dst, n, c, h, w, threads): [n, c, h, w] -> [n, h, w, c]
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pthread.h>
#include <string.h>

#define MAX_THREADS 64
/* A thread costs ~10-20 us to start and join; below this many output values per thread
 * (about 15 us of sampling at ~0.5 ns a value) the split would cost more than it saves. */
#define MIN_VALUES_PER_THREAD 32768L

typedef struct {
    const float *x, *off, *mask;
    float *out;
    long n, h, w, c, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw;
    long q0, q1; /* this worker's range of work items */
} job_t;

typedef void (*work_fn)(const job_t *);

/* Corner weights of one tap at one pixel, with the mask folded in; zero for corners outside
 * the image (their index is clamped into it, so every read stays in bounds). */
static inline __attribute__((always_inline)) void sample_tap(const float *restrict x, long h, long w, long c, float y, float xx,
                              float m, float *restrict o)
{
    long ch;
    /* zeros outside (-1, h) x (-1, w), as ONNX Runtime and torchvision; NaN lands here too */
    if (!(y > -1.0f && y < (float)h && xx > -1.0f && xx < (float)w)) {
        memset(o, 0, (size_t)c * sizeof(float));
        return;
    }
    long y0 = (long)y, x0 = (long)xx; /* truncation; fix to floor for (-1, 0) */
    if ((float)y0 > y)
        y0--;
    if ((float)x0 > xx)
        x0--;
    float ly = y - (float)y0, lx = xx - (float)x0;
    float hy = 1.0f - ly, hx = 1.0f - lx;
    float w00 = hy * hx * m, w01 = hy * lx * m, w10 = ly * hx * m, w11 = ly * lx * m;
    long y1 = y0 + 1, x1 = x0 + 1;
    if (y0 < 0) {
        w00 = w01 = 0.0f;
        y0 = 0;
    }
    if (y1 >= h) {
        w10 = w11 = 0.0f;
        y1 = h - 1;
    }
    if (x0 < 0) {
        w00 = w10 = 0.0f;
        x0 = 0;
    }
    if (x1 >= w) {
        w01 = w11 = 0.0f;
        x1 = w - 1;
    }
    const float *restrict a = x + (y0 * w + x0) * c;
    const float *restrict b = x + (y0 * w + x1) * c;
    const float *restrict d = x + (y1 * w + x0) * c;
    const float *restrict e = x + (y1 * w + x1) * c;
    for (ch = 0; ch < c; ch++)
        o[ch] = w00 * a[ch] + w01 * b[ch] + w10 * d[ch] + w11 * e[ch];
}

/* Work item q = image * (oh * ow) + output pixel: all taps and channels of one pixel.
 * Inlined with a constant channel count for FeatherFace's 14, 28 and 56, the per-channel loop
 * is unrolled and its remainder resolved at compile time: at 14 channels the per-tap set-up
 * is a large share of the work (measured ~1.3 ns a sample generic). */
static inline __attribute__((always_inline)) void sample_range_c(const job_t *j, const long c)
{
    const long p_count = j->oh * j->ow, k_count = j->kh * j->kw;
    const long row = k_count * c;
    for (long q = j->q0; q < j->q1; q++) {
        const long img = q / p_count, p = q % p_count;
        const long oy = p / j->ow, ox = p % j->ow;
        const float *x = j->x + img * j->h * j->w * c;
        const float *off = j->off + img * 2 * k_count * p_count + p;
        const float *mask = j->mask ? j->mask + img * k_count * p_count + p : NULL;
        float *out = j->out + q * row;
        for (long i = 0; i < j->kh; i++) {
            for (long jj = 0; jj < j->kw; jj++) {
                const long k = i * j->kw + jj;
                const float y = (float)(oy * j->sh - j->ph + i * j->dh) + off[2 * k * p_count];
                const float xx =
                    (float)(ox * j->sw - j->pw + jj * j->dw) + off[(2 * k + 1) * p_count];
                const float m = mask ? mask[k * p_count] : 1.0f;
                sample_tap(x, j->h, j->w, c, y, xx, m, out + k * c);
            }
        }
    }
}

static void sample_range(const job_t *j)
{
    switch (j->c) {
    case 14:
        sample_range_c(j, 14);
        break;
    case 28:
        sample_range_c(j, 28);
        break;
    case 56:
        sample_range_c(j, 56);
        break;
    default:
        sample_range_c(j, j->c);
    }
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

static int check_len(const Py_buffer *b, long count, const char *name)
{
    if (b->len != (Py_ssize_t)(count * (long)sizeof(float))) {
        PyErr_Format(PyExc_ValueError, "%s has %zd bytes, expected %ld float32 values", name,
                     b->len, count);
        return -1;
    }
    return 0;
}

static PyObject *py_sample(PyObject *self, PyObject *args)
{
    Py_buffer x, off, out, mask;
    PyObject *mask_obj;
    job_t j;
    long threads, k_count, p_count;
    PyObject *ret = NULL;
    int have_mask = 0;
    (void)self;
    memset(&j, 0, sizeof(j));
    if (!PyArg_ParseTuple(args, "y*y*Ow*lllllllllllllll", &x, &off, &mask_obj, &out, &j.n,
                          &j.h, &j.w, &j.c, &j.oh, &j.ow, &j.kh, &j.kw, &j.sh, &j.sw, &j.ph,
                          &j.pw, &j.dh, &j.dw, &threads))
        return NULL;
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
    k_count = j.kh * j.kw;
    p_count = j.oh * j.ow;
    if (check_len(&x, j.n * j.h * j.w * j.c, "x") < 0 ||
        check_len(&off, j.n * 2 * k_count * p_count, "offset") < 0 ||
        (have_mask && check_len(&mask, j.n * k_count * p_count, "mask") < 0) ||
        check_len(&out, j.n * p_count * k_count * j.c, "cols") < 0)
        goto done;
    j.x = x.buf;
    j.off = off.buf;
    j.mask = have_mask ? mask.buf : NULL;
    j.out = out.buf;
    threads = clamp_threads(threads, j.n * p_count * k_count * j.c);
    Py_BEGIN_ALLOW_THREADS
    run_parallel(sample_range, &j, j.n * p_count, threads);
    Py_END_ALLOW_THREADS
    Py_INCREF(Py_None);
    ret = Py_None;
done:
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
     "threads): modulated deformable bilinear sampling, NHWC x -> cols [n, oh*ow, kh*kw*c]."},
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
