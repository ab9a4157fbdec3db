/*
 * detectors._libm_log: math.log over a buffer of doubles, in one C call.
 *
 * The class-mix detector's column path (detectors/_sr_columns.py) takes the
 * logarithm of thousands of ratios per column and must get, bit for bit, what its
 * per-event path gets from math.log. For a finite positive double CPython's
 * math.log returns libm's log(x), the function called here; every other value
 * (zero, negative, infinite, NaN) is left to the caller (the return value says
 * where the first one is), which hands it to math.log itself. numpy's own log is
 * not libm's and differs in the last bit for some values.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>

/* log_into(src, dst) -> index of the first value not finite and positive, or
 * len(src) when there is none; dst[i] = log(src[i]) before that index. */
static PyObject *log_into(PyObject *self, PyObject *args) {
    Py_buffer src, dst;
    if (!PyArg_ParseTuple(args, "y*w*", &src, &dst)) {
        return NULL;
    }
    if (src.len % sizeof(double) != 0 || dst.len < src.len) {
        PyBuffer_Release(&src);
        PyBuffer_Release(&dst);
        PyErr_SetString(PyExc_ValueError, "log_into: buffers of doubles, dst at least as long");
        return NULL;
    }
    const double *x = (const double *)src.buf;
    double *y = (double *)dst.buf;
    Py_ssize_t n = src.len / (Py_ssize_t)sizeof(double), i = 0;
    Py_BEGIN_ALLOW_THREADS
    for (; i < n; i++) {
        double v = x[i];
        if (!(v > 0.0 && isfinite(v))) {
            break;
        }
        y[i] = log(v);
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&src);
    PyBuffer_Release(&dst);
    return PyLong_FromSsize_t(i);
}

static PyMethodDef methods[] = {
    {"log_into", log_into, METH_VARARGS,
     "log_into(src, dst): dst[i] = math.log(src[i]) up to the first value that is not "
     "finite and positive; returns its index (len(src) when none)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "detectors._libm_log", NULL, -1, methods,
};

PyMODINIT_FUNC PyInit__libm_log(void) { return PyModule_Create(&module); }
