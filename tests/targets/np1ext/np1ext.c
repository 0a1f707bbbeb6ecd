/* Stand-in for picamera2's and simplejpeg's compiled parts: a C extension built against the
 * system's NumPy headers (Debian/Raspberry Pi OS python3-numpy: 1.24 on Bookworm, 2.2 on
 * Trixie), using NumPy's C API the way they do (import_array, create an array, read one).
 * Built for NumPy 1.x, its import fails under NumPy 2 ("A module that was compiled using
 * NumPy 1.x cannot be run in NumPy 2.x"), exactly as theirs does when pip shadows apt's
 * numpy with numpy 2.x; built for 2.x, it fails under a numpy 1.x. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#include <numpy/arrayobject.h>

/* frame(h, w) -> uint8 array (h, w, 3), pixel (y, x, c) = (y + 2x + 3c) % 256: a "capture" */
static PyObject *frame(PyObject *self, PyObject *args)
{
    int h, w;
    if (!PyArg_ParseTuple(args, "ii", &h, &w))
        return NULL;
    npy_intp dims[3] = {h, w, 3};
    PyObject *arr = PyArray_SimpleNew(3, dims, NPY_UINT8);
    if (arr == NULL)
        return NULL;
    unsigned char *p = PyArray_DATA((PyArrayObject *)arr);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++)
                *p++ = (unsigned char)(y + 2 * x + 3 * c);
    return arr;
}

/* checksum(array) -> sum of its bytes as uint8: an "encoder" reading a numpy buffer */
static PyObject *checksum(PyObject *self, PyObject *args)
{
    PyObject *obj;
    if (!PyArg_ParseTuple(args, "O", &obj))
        return NULL;
    PyArrayObject *arr = (PyArrayObject *)PyArray_FROM_OTF(obj, NPY_UINT8, NPY_ARRAY_IN_ARRAY);
    if (arr == NULL)
        return NULL;
    const unsigned char *p = PyArray_DATA(arr);
    unsigned long long sum = 0;
    for (npy_intp i = 0; i < PyArray_SIZE(arr); i++)
        sum += p[i];
    Py_DECREF(arr);
    return PyLong_FromUnsignedLongLong(sum);
}

/* The NumPy ABI and C-API versions of the headers this file was compiled against. */
static PyObject *built_against(PyObject *self, PyObject *noargs)
{
    return Py_BuildValue("(II)", (unsigned int)NPY_ABI_VERSION, (unsigned int)NPY_API_VERSION);
}

static PyMethodDef methods[] = {
    {"frame", frame, METH_VARARGS, "frame(h, w) -> uint8 array (h, w, 3)"},
    {"checksum", checksum, METH_VARARGS, "checksum(array) -> sum of its bytes"},
    {"built_against", built_against, METH_NOARGS, "(NPY_ABI_VERSION, NPY_API_VERSION)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "np1ext", NULL, -1, methods};

PyMODINIT_FUNC PyInit_np1ext(void)
{
    import_array();  /* returns NULL with ImportError set when the runtime NumPy is incompatible */
    return PyModule_Create(&module);
}
