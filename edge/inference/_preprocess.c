/* Preprocessing in one pass: a BGR uint8 image (HWC, C-contiguous), bilinear-resized with
 * the values of OpenCV's cv2.resize(..., interpolation=cv2.INTER_LINEAR_EXACT), minus a
 * per-channel float32 mean, written straight into a float32 NCHW blob.
 *
 * The OpenCV path it replaces (preprocess.py) converts to BGRA, resizes, splits the planes
 * and subtracts: four passes over model-sized buffers, 0.7-0.9 ms a 640x480 frame on x86.
 * Here each source row that an output row reads is blended horizontally once (into planar
 * 16-bit rows), and each output row is one vertical blend of two of them that writes the
 * float planes.
 *
 * The values are OpenCV's (resize_bitExact in its imgproc/src/resize.cpp, read, not
 * copied): weights with 8 fraction bits, w0 + w1 = 256, w1 = round-half-even((f - floor f)
 * * 256) at the source coordinate f = (1 / (dst / src)) * (d + 0.5) - 0.5 in double
 * precision; a coordinate left of the first pixel, or at or past the last one, takes that
 * edge pixel alone (w1 = 0). The horizontal sum stays an integer (<= 65280); the vertical
 * one is rounded once, (w0 * a + w1 * b + 2^15) >> 16. Edge rows, which OpenCV rounds by
 * (h + 2^7) >> 8 instead, are the case w_y = (256, 0) of that.
 *
 * Only the CPython C API (buffer protocol), as _sampler.c: no numpy headers at build time,
 * one binary for numpy 1.x and 2.x. Plain C, no intrinsics: gcc -O3 vectorises both loops
 * on x86-64 (SSE2, and AVX2 where the CPU has it, below) and aarch64 (NEON).
 *
 * resize_subtract(image, blob, h, w, th, tw, mean_b, mean_g, mean_r)
 *   image  uint8 [h, w, 3], C-contiguous
 *   blob   float32 [3, th, tw] (or [1, 3, th, tw]), C-contiguous, written
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* The taps of one axis: source index i (and i + 1 when w1 > 0 can matter) and the weight of
 * the second one, as OpenCV's interpolationLinear computes them for src -> dst. */
static void linear_taps(long src, long dst, long *first, long *second, uint16_t *w1)
{
    double scale = 1.0 / ((double)dst / (double)src);
    for (long d = 0; d < dst; d++) {
        /* volatile: the product is rounded to double before the subtraction, as OpenCV's
         * softdouble does. gcc contracts the two into a fused multiply-add by default on
         * aarch64: there the tables then differed for 3,826 of the 1.4 million (src, dst)
         * pairs up to 2000 x 700 (the first: 2 -> 6; gcc 12 -O3 under qemu). */
        volatile double product = scale * ((double)d + 0.5);
        double f = product - 0.5;
        long i = (long)f;
        if ((double)i > f)
            i -= 1; /* floor for negative f */
        if (i >= 0 && src > 1 && i < src - 1) {
            double t = (f - (double)i) * 256.0; /* exact: f - i and * 256 lose no bits */
            long r = (long)t;
            double frac = t - (double)r;
            if (frac > 0.5 || (frac == 0.5 && (r & 1)))
                r += 1; /* round half to even, as cvRound(softdouble) */
            first[d] = i;
            second[d] = i + 1;
            w1[d] = (uint16_t)r;
        } else {
            first[d] = second[d] = (i >= 0 && src > 1) ? src - 1 : 0;
            w1[d] = 0;
        }
    }
}

/* x86-64: the two loops are also compiled for AVX2 and picked at load time (gcc's
 * target_clones, an ifunc: glibc only). Plain C either way; on a 2-core AVX2 EPYC the
 * 640x480 -> 416x416 frame takes 0.34 ms with them against 0.49 ms on baseline SSE2 (C
 * harness, best of 300). aarch64's baseline (NEON) has the 16x16->32-bit multiplies the row
 * blend needs. */
#if defined(__x86_64__) && defined(__GLIBC__) && (defined(__clang__) || __GNUC__ >= 6)
#define HOT __attribute__((target_clones("avx2", "default")))
#else
#define HOT
#endif

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the bytes of a pixel are read as the low bytes of a uint32_t: little-endian only"
#endif

/* The horizontal blend of one source row into three planar rows h[c * tw + d] = w0 *
 * pixel(x, c) + w1 * pixel(x + 1, c), x3[d] = 3 * x the byte offset of pixel x. Each pixel
 * is one 4-byte load (b, g, r, next byte): b and r, 16 bits apart, blend in one 32-bit
 * multiplication a weight (each lane <= 256 * 255 = 65280 as w0 + w1 = 256, so no carry
 * into the next), g in another. One multiplication a channel and byte loads took 0.53 ms a
 * 640x480 frame in place of 0.28 (SSE2) or 0.15 (AVX2, gathers) on x86. The 4-byte loads
 * reach 7 bytes past x3[d]: pixels closer than that to the image's end (avail bytes from
 * s) are read byte by byte. */
static inline __attribute__((always_inline)) void blend_pixel(uint32_t p, uint32_t q,
                                                             uint32_t c1, long d, long tw,
                                                             uint16_t *restrict h)
{
    const uint32_t c0 = 256 - c1;
    const uint32_t br = c0 * (p & 0xFF00FFu) + c1 * (q & 0xFF00FFu);
    h[d] = (uint16_t)br;
    h[tw + d] = (uint16_t)(c0 * ((p >> 8) & 0xFFu) + c1 * ((q >> 8) & 0xFFu));
    h[2 * tw + d] = (uint16_t)(br >> 16);
}

HOT static void blend_columns(const uint8_t *restrict s, const int32_t *restrict x3,
                              const uint16_t *restrict w1, long tw, long w, long avail,
                              uint16_t *restrict h)
{
    long d = 0, safe = tw;
    while (safe > 0 && x3[safe - 1] + 7L > avail) /* x3 never decreases */
        safe--;
    for (; d < safe; d++) {
        uint32_t p, q;
        memcpy(&p, s + x3[d], 4);
        memcpy(&q, s + x3[d] + 3, 4);
        blend_pixel(p, q, w1[d], d, tw, h);
    }
    for (; d < tw; d++) {
        uint32_t p = 0, q = 0;
        memcpy(&p, s + x3[d], 3);
        if (x3[d] + 3 < 3 * w) /* the right edge pixel has no right neighbour (w1 = 0) */
            memcpy(&q, s + x3[d] + 3, 3);
        blend_pixel(p, q, w1[d], d, tw, h);
    }
}

/* One plane of one output row from two horizontally blended rows: the vertical blend,
 * rounded once to a grey level (the sum is w_y * w_x * pixel with 16 fraction bits), then
 * float32(grey) - float32(mean). 16-bit weights and a signed grey level: gcc then uses
 * 16x16->32-bit multiplies and a signed conversion, which SSE2 has (0.26 -> 0.19 ms a
 * 416x416 frame). */
HOT static void blend_rows(const uint16_t *restrict a, const uint16_t *restrict b,
                           unsigned w1, float mean, float *restrict out, long tw)
{
    const uint16_t c1 = (uint16_t)w1, c0 = (uint16_t)(256 - w1);
    for (long d = 0; d < tw; d++) {
        int32_t grey = (int32_t)(((uint32_t)a[d] * c0 + (uint32_t)b[d] * c1 + 32768u) >> 16);
        out[d] = (float)grey - mean;
    }
}

typedef struct {
    const uint8_t *src;
    long h, w, th, tw;
    float mean[3];
    float *out;
    long *x0, *x1, *y0, *y1; /* source columns and rows */
    int32_t *x3;              /* 3 * x0: byte offsets in a row */
    uint16_t *wx, *wy;
    uint16_t *rows[2]; /* two horizontally blended source rows, [3, tw] each */
} job_t;

/* Scratch for job_t's rows and tables, in one block. */
static size_t scratch_bytes(long th, long tw)
{
    return (size_t)(2 * (tw + th)) * sizeof(long) + (size_t)tw * sizeof(int32_t) +
           (size_t)(7 * tw + th) * sizeof(uint16_t);
}

static void lay_out(job_t *j, void *scratch)
{
    j->x0 = scratch;
    j->x1 = j->x0 + j->tw;
    j->y0 = j->x1 + j->tw;
    j->y1 = j->y0 + j->th;
    j->x3 = (int32_t *)(j->y1 + j->th);
    j->rows[0] = (uint16_t *)(j->x3 + j->tw);
    j->rows[1] = j->rows[0] + 3 * j->tw;
    j->wx = j->rows[1] + 3 * j->tw;
    j->wy = j->wx + j->tw;
}

static void resize_subtract(job_t *j)
{
    const long row = 3 * j->w, tw = j->tw, plane = j->th * tw;
    long held[2] = {-1, -1};
    linear_taps(j->w, tw, j->x0, j->x1, j->wx);
    linear_taps(j->h, j->th, j->y0, j->y1, j->wy);
    for (long d = 0; d < tw; d++)
        j->x3[d] = (int32_t)(3 * j->x0[d]);
    for (long dy = 0; dy < j->th; dy++) {
        const long want[2] = {j->y0[dy], j->y1[dy]};
        const uint16_t *h[2];
        for (int k = 0; k < 2; k++) { /* each source row is blended once (rows only grow) */
            int slot = held[0] == want[k] ? 0 : held[1] == want[k] ? 1 : -1;
            if (slot < 0) { /* into the slot that the other tap does not read */
                slot = held[0] == want[1 - k] ? 1 : 0;
                blend_columns(j->src + want[k] * row, j->x3, j->wx, tw, j->w,
                              (j->h - want[k]) * row, j->rows[slot]);
                held[slot] = want[k];
            }
            h[k] = j->rows[slot];
        }
        for (int c = 0; c < 3; c++)
            blend_rows(h[0] + c * tw, h[1] + c * tw, j->wy[dy], j->mean[c],
                       j->out + c * plane + dy * tw, tw);
    }
}

static PyObject *py_resize_subtract(PyObject *self, PyObject *args)
{
    Py_buffer image, blob;
    job_t j;
    PyObject *ret = NULL;
    void *scratch = NULL;
    (void)self;
    memset(&j, 0, sizeof(j));
    if (!PyArg_ParseTuple(args, "y*w*llllfff", &image, &blob, &j.h, &j.w, &j.th, &j.tw,
                          &j.mean[0], &j.mean[1], &j.mean[2]))
        return NULL;
    /* 2^24 pixels a side keeps every index product inside a long and f exact enough */
    if (j.h < 1 || j.w < 1 || j.th < 1 || j.tw < 1 || j.h > (1L << 24) || j.w > (1L << 24) ||
        j.th > (1L << 24) || j.tw > (1L << 24)) {
        PyErr_SetString(PyExc_ValueError, "sizes must be in 1 .. 2**24");
        goto done;
    }
    if (image.len != (Py_ssize_t)(j.h * j.w * 3)) {
        PyErr_Format(PyExc_ValueError, "image: %zd bytes, expected %ld", image.len,
                     j.h * j.w * 3);
        goto done;
    }
    if (blob.len != (Py_ssize_t)(3 * j.th * j.tw * sizeof(float))) {
        PyErr_Format(PyExc_ValueError, "blob: %zd bytes, expected %ld", blob.len,
                     (long)(3 * j.th * j.tw * sizeof(float)));
        goto done;
    }
    /* Tables and two blended rows: 20 KB at 416x416, below glibc's
     * 128 KB mmap threshold, so they come from the heap without the page faults that
     * model-sized buffers allocated afresh each frame cost (_scratch in preprocess.py). */
    scratch = PyMem_RawMalloc(scratch_bytes(j.th, j.tw));
    if (scratch == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    lay_out(&j, scratch);
    j.src = image.buf;
    j.out = blob.buf;
    Py_BEGIN_ALLOW_THREADS
    resize_subtract(&j);
    Py_END_ALLOW_THREADS
    Py_INCREF(Py_None);
    ret = Py_None;
done:
    PyMem_RawFree(scratch);
    PyBuffer_Release(&image);
    PyBuffer_Release(&blob);
    return ret;
}

static PyMethodDef methods[] = {
    {"resize_subtract", py_resize_subtract, METH_VARARGS,
     "resize_subtract(image, blob, h, w, th, tw, mean_b, mean_g, mean_r): BGR uint8 "
     "[h, w, 3] -> float32 [3, th, tw], resized as cv2.INTER_LINEAR_EXACT, minus the "
     "float32 means."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_preprocess",
    "Fused resize and mean subtraction (see edgeface.inference.preprocess).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__preprocess(void)
{
    return PyModule_Create(&module);
}
