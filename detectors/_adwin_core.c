/*
 * detectors._adwin_core: the compiled engine of detectors.ADWIN.
 *
 * A C twin of the pure-Python engine in detectors/_adwin_reference.py (the
 * reference): the same bucket structure, insertion, compression and cut search,
 * with the floating-point operations in the same order, so detections, window
 * statistics and snapshots are bit-identical (tests/detectors/test_adwin_native.py).
 * Build with -ffp-contract=off: a fused multiply-add would round differently.
 *
 * Differences of mechanics, invisible to callers:
 *  - values are inserted at once (the reference defers them to the next check;
 *    the structure is the same either way, because merging always pairs the two
 *    oldest buckets of a level);
 *  - each level is a growable ring buffer, oldest bucket at `head`.
 *
 * The type is a base class: detectors.adwin.ADWIN derives from it, so that
 * `ADWIN.update(x)` is one C call. Hyperparameters are validated in Python
 * (detectors/adwin.py) and handed over by `_configure`; state validation is done
 * in Python too, `_import_state` re-checks what memory safety needs.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <limits.h>
#include <math.h>
#include <string.h>

#define MIN_RING 8 /* a power of two */

typedef struct {
    double *t;        /* bucket totals, ring of `cap` */
    double *v;        /* bucket variances, ring of `cap` (same allocation as t) */
    Py_ssize_t head;  /* index of the oldest bucket */
    Py_ssize_t len;
    Py_ssize_t cap;   /* 0 (no storage yet) or a power of two */
} Level;

typedef struct {
    PyObject_HEAD
    /* hyperparameters (from _configure; integers clamped to long long) */
    double delta;
    long long clock;
    long long max_buckets;
    long long min_window_length;
    long long grace_period;
    /* what the last update caused (members, writable: DriftDetector sets them) */
    char drift_detected;
    char warning_detected;
    /* the window */
    double width;
    double total;
    double variance;
    long long tick;      /* updates since the last restart */
    long long countdown; /* updates until the next check: clock - tick % clock */
    Level *levels;       /* level 0 (single values) first */
    int nlevels;         /* levels in use, >= 1 */
    int nalloc;          /* entries of `levels` allocated */
} Core;

static const double C23 = 2.0 / 3.0;

/* -- bucket storage ------------------------------------------------------------ */

static void
free_levels(Level *levels, int n)
{
    for (int i = 0; i < n; i++) {
        PyMem_Free(levels[i].t);
    }
    PyMem_Free(levels);
}

/* Make level `lv` exist (empty) when it is one past the last in use. */
static int
add_level(Core *s)
{
    if (s->nlevels == s->nalloc) {
        int n = s->nalloc ? 2 * s->nalloc : 8;
        Level *grown = PyMem_Realloc(s->levels, (size_t)n * sizeof(Level));
        if (grown == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        memset(grown + s->nalloc, 0, (size_t)(n - s->nalloc) * sizeof(Level));
        s->levels = grown;
        s->nalloc = n;
    }
    Level *l = &s->levels[s->nlevels];
    l->head = 0;
    l->len = 0;
    s->nlevels++;
    return 0;
}

static int
grow_ring(Level *l)
{
    Py_ssize_t cap = l->cap ? 2 * l->cap : MIN_RING;
    if (cap > PY_SSIZE_T_MAX / (Py_ssize_t)(2 * sizeof(double))) {
        PyErr_NoMemory();
        return -1;
    }
    double *buf = PyMem_Malloc((size_t)cap * 2 * sizeof(double));
    if (buf == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    Py_ssize_t mask = l->cap - 1;
    for (Py_ssize_t k = 0; k < l->len; k++) {
        buf[k] = l->t[(l->head + k) & mask];
        buf[cap + k] = l->v[(l->head + k) & mask];
    }
    PyMem_Free(l->t);
    l->t = buf;
    l->v = buf + cap;
    l->head = 0;
    l->cap = cap;
    return 0;
}

static inline int
push(Level *l, double t, double v)
{
    if (l->len == l->cap && grow_ring(l) < 0) {
        return -1;
    }
    Py_ssize_t i = (l->head + l->len) & (l->cap - 1);
    l->t[i] = t;
    l->v[i] = v;
    l->len++;
    return 0;
}

static inline void
pop_oldest(Level *l)
{
    l->head = (l->head + 1) & (l->cap - 1);
    l->len--;
}

/* -- ADWIN --------------------------------------------------------------------- */

static void
restart(Core *s)
{
    s->drift_detected = 0;
    s->warning_detected = 0;
    s->width = 0.0;
    s->total = 0.0;
    s->variance = 0.0;
    s->tick = 0;
    s->countdown = s->clock;
    s->nlevels = 1;
    s->levels[0].head = 0;
    s->levels[0].len = 0;
}

/* river's insert_element: the window statistics, then level 0, then compression
   (the two oldest buckets of a level over max_buckets merge into the next). */
static int
insert(Core *s, double x)
{
    double w = s->width;
    if (w > 0.0) {
        double dv = x - s->total / w;
        s->variance += w * dv * dv / (w + 1.0);
    }
    s->total += x;
    s->width = w + 1.0;
    if (push(&s->levels[0], x, 0.0) < 0) {
        return -1;
    }
    /* a / 2**level is computed as a * 2**-level: both are the correctly rounded
       value of the same real number, so the results are identical */
    double n1 = 1.0, inv = 1.0; /* 2**level, 2**-level */
    for (int level = 0; s->levels[level].len > s->max_buckets;
         level++, n1 *= 2.0, inv *= 0.5) {
        Level *l = &s->levels[level];
        Py_ssize_t mask = l->cap - 1;
        double a = l->t[l->head], va = l->v[l->head];
        double b = l->t[(l->head + 1) & mask], vb = l->v[(l->head + 1) & mask];
        pop_oldest(l);
        pop_oldest(l);
        double h = n1 * 0.5;
        double d = a * inv - b * inv;
        double t = a + b;
        double v = va + vb + h * d * d;
        if (level + 1 == s->nlevels && add_level(s) < 0) {
            return -1; /* (the merged pair is lost: MemoryError leaves no usable state) */
        }
        if (push(&s->levels[level + 1], t, v) < 0) {
            return -1;
        }
    }
    return 0;
}

/* One scan of river's cut search over the buckets, oldest first: whether some
   cut leaving min_window_length values on both sides passes the bound. */
static int
cut_exists(const Core *s)
{
    double mwl = (double)s->min_window_length;
    double width = s->width;
    if (width < 2.0 * mwl) {
        return 0;
    }
    double vw = s->variance / width;
    if (!(vw >= 0.0)) {
        return 0;
    }
    double c = mwl - 1.0;
    double dp = log(2.0 * log(width) / s->delta);
    double c23dp = C23 * dp;
    double limit = width - mwl;
    double n0 = 0.0, u0 = 0.0, u1 = s->total;
    int first = 1;
    for (int level = s->nlevels - 1; level >= 0; level--) {
        const Level *l = &s->levels[level];
        double size = ldexp(1.0, level);
        Py_ssize_t mask = l->cap - 1;
        for (Py_ssize_t k = 0; k < l->len; k++) {
            double t = l->t[(l->head + k) & mask];
            n0 += size;
            u0 = first ? t : u0 + t;
            first = 0;
            u1 -= t;
            if (n0 < mwl) {
                continue;
            }
            if (n0 > limit) {
                return 0;
            }
            double n1 = width - n0;
            double m = 1.0 / (n0 - c) + 1.0 / (n1 - c);
            if (fabs(u0 / n0 - u1 / n1) > sqrt(2.0 * m * vw * dp) + c23dp * m) {
                return 1;
            }
        }
    }
    return 0;
}

static void
drop_empty_top(Core *s)
{
    while (s->nlevels > 1 && s->levels[s->nlevels - 1].len == 0) {
        s->nlevels--;
    }
}

/* Drop the oldest bucket. With max_buckets=1 a level can be empty, so the oldest
   bucket may sit below an empty top level (river reads past the end there). */
static void
delete_oldest(Core *s)
{
    drop_empty_top(s);
    int last = s->nlevels - 1;
    Level *l = &s->levels[last];
    if (l->len == 0) {
        return; /* an empty window: no cut can have passed */
    }
    double n = ldexp(1.0, last);
    double u = l->t[l->head];
    double v = l->v[l->head];
    double mu = u / n;
    s->width -= n;
    s->total -= u;
    double width = s->width;
    double mu_window = s->total / width;
    double d = mu - mu_window;
    s->variance -= v + n * width * d * d / (n + width);
    pop_oldest(l);
    drop_empty_top(s);
}

static int
detect(Core *s)
{
    int change = 0;
    while (cut_exists(s)) {
        change = 1;
        delete_oldest(s);
    }
    return change;
}

/* One observation (finite): river's update. */
static inline int
step(Core *s, double x)
{
    if (s->drift_detected) {
        restart(s);
    }
    if (insert(s, x) < 0) {
        return -1;
    }
    s->tick++;
    if (--s->countdown == 0) {
        s->countdown = s->clock;
        /* width is integral and < 2**63 here: the comparison is exact */
        if ((long long)s->width > s->grace_period) {
            s->drift_detected = (char)detect(s);
        }
    }
    return 0;
}

/* -- Python methods ------------------------------------------------------------ */

static PyObject *
not_finite(double x)
{
    PyObject *f = PyFloat_FromDouble(x);
    if (f != NULL) {
        PyErr_Format(PyExc_ValueError, "x must be a finite number, got %R", f);
        Py_DECREF(f);
    }
    return NULL;
}

static PyObject *
Core_update(Core *s, PyObject *arg)
{
    double x;
    if (PyFloat_CheckExact(arg)) {
        x = PyFloat_AS_DOUBLE(arg);
    }
    else if (PyLong_CheckExact(arg)) {
        x = PyLong_AsDouble(arg);
        if (x == -1.0 && PyErr_Occurred()) {
            return NULL;
        }
    }
    else { /* float(x): __float__, __index__, strings */
        PyObject *f = PyNumber_Float(arg);
        if (f == NULL) {
            return NULL;
        }
        x = PyFloat_AS_DOUBLE(f);
        Py_DECREF(f);
    }
    if (!isfinite(x)) {
        return not_finite(x);
    }
    if (step(s, x) < 0) {
        return NULL;
    }
    return Py_NewRef((PyObject *)s);
}

static int
native_double_format(const char *fmt)
{
    if (fmt == NULL) {
        return 0; /* PyBUF_FORMAT was requested: NULL would mean "B" */
    }
    if (fmt[0] == '@' || fmt[0] == '=') {
        fmt++;
    }
#if PY_LITTLE_ENDIAN
    else if (fmt[0] == '<') {
        fmt++;
    }
#else
    else if (fmt[0] == '>' || fmt[0] == '!') {
        fmt++;
    }
#endif
    return fmt[0] == 'd' && fmt[1] == '\0';
}

static PyObject *
Core_update_array(Core *s, PyObject *arg)
{
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
        return NULL;
    }
    PyObject *out = NULL;
    if (view.itemsize != (Py_ssize_t)sizeof(double) || !native_double_format(view.format)) {
        PyErr_SetString(PyExc_TypeError, "_update_array needs a contiguous float64 buffer");
        goto done;
    }
    const double *xs = (const double *)view.buf;
    Py_ssize_t n = view.len / (Py_ssize_t)sizeof(double);
    for (Py_ssize_t i = 0; i < n; i++) { /* all or nothing */
        if (!isfinite(xs[i])) {
            not_finite(xs[i]);
            goto done;
        }
    }
    out = PyList_New(0);
    if (out == NULL) {
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (step(s, xs[i]) < 0) {
            Py_CLEAR(out);
            goto done;
        }
        if (s->drift_detected) {
            PyObject *index = PyLong_FromSsize_t(i);
            if (index == NULL || PyList_Append(out, index) < 0) {
                Py_XDECREF(index);
                Py_CLEAR(out);
                goto done;
            }
            Py_DECREF(index);
        }
    }
done:
    PyBuffer_Release(&view);
    return out;
}

static PyObject *
Core_reset(Core *s, PyObject *Py_UNUSED(ignored))
{
    restart(s);
    Py_RETURN_NONE;
}

/* An integer hyperparameter >= minimum; values beyond long long are clamped
   (they behave alike: no window gets that long). */
static int
clamped_int(PyObject *obj, const char *name, long long minimum, long long *out)
{
    int overflow = 0;
    long long value = PyLong_AsLongLongAndOverflow(obj, &overflow);
    if (value == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (overflow > 0) {
        value = LLONG_MAX;
    }
    if (overflow < 0 || value < minimum) {
        PyErr_Format(PyExc_ValueError, "%s: must be >= %lld, got %R", name, minimum, obj);
        return -1;
    }
    *out = value;
    return 0;
}

static PyObject *
Core_configure(Core *s, PyObject *args)
{
    double delta;
    PyObject *clock, *max_buckets, *min_window_length, *grace_period;
    if (!PyArg_ParseTuple(args, "dO!O!O!O!:_configure", &delta, &PyLong_Type, &clock,
                          &PyLong_Type, &max_buckets, &PyLong_Type, &min_window_length,
                          &PyLong_Type, &grace_period)) {
        return NULL;
    }
    if (!(delta > 0.0 && delta < 1.0)) {
        return PyErr_Format(PyExc_ValueError, "delta: must be a number in (0, 1), got %R",
                            PyTuple_GET_ITEM(args, 0));
    }
    long long c, mb, mwl, gp;
    if (clamped_int(clock, "clock", 1, &c) < 0 ||
        clamped_int(max_buckets, "max_buckets", 1, &mb) < 0 ||
        clamped_int(min_window_length, "min_window_length", 1, &mwl) < 0 ||
        clamped_int(grace_period, "grace_period", 0, &gp) < 0) {
        return NULL;
    }
    s->delta = delta;
    s->clock = c;
    s->max_buckets = mb;
    s->min_window_length = mwl;
    s->grace_period = gp;
    restart(s);
    Py_RETURN_NONE;
}

/* -- snapshots ----------------------------------------------------------------- */

static PyObject *
level_list(const Level *l, int variances)
{
    PyObject *list = PyList_New(l->len);
    if (list == NULL) {
        return NULL;
    }
    const double *src = variances ? l->v : l->t;
    for (Py_ssize_t k = 0; k < l->len; k++) {
        PyObject *f = PyFloat_FromDouble(src[(l->head + k) & (l->cap - 1)]);
        if (f == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, k, f);
    }
    return list;
}

static PyObject *
levels_list(const Core *s, int variances)
{
    PyObject *list = PyList_New(s->nlevels);
    if (list == NULL) {
        return NULL;
    }
    for (int lv = 0; lv < s->nlevels; lv++) {
        PyObject *level = level_list(&s->levels[lv], variances);
        if (level == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, lv, level);
    }
    return list;
}

static int
set_item(PyObject *dict, const char *key, PyObject *value)
{
    if (value == NULL) {
        return -1;
    }
    int rc = PyDict_SetItemString(dict, key, value);
    Py_DECREF(value);
    return rc;
}

/* The snapshot, in the layout of the reference's (keys in the same order). */
static PyObject *
Core_export_state(Core *s, PyObject *Py_UNUSED(ignored))
{
    PyObject *d = PyDict_New();
    if (d == NULL) {
        return NULL;
    }
    if (set_item(d, "width", PyLong_FromDouble(s->width)) < 0 ||
        set_item(d, "total", PyFloat_FromDouble(s->total)) < 0 ||
        set_item(d, "variance", PyFloat_FromDouble(s->variance)) < 0 ||
        set_item(d, "tick", PyLong_FromLongLong(s->tick)) < 0 ||
        set_item(d, "bucket_totals", levels_list(s, 0)) < 0 ||
        set_item(d, "bucket_variances", levels_list(s, 1)) < 0 ||
        set_item(d, "drift_detected", PyBool_FromLong(s->drift_detected)) < 0) {
        Py_DECREF(d);
        return NULL;
    }
    return d;
}

static PyObject *
get_key(PyObject *state, const char *key)
{
    PyObject *value = PyMapping_GetItemString(state, key); /* new reference */
    if (value == NULL && PyErr_ExceptionMatches(PyExc_KeyError)) {
        PyErr_Clear();
        PyErr_Format(PyExc_KeyError, "%s", key);
    }
    return value;
}

static int
get_count(PyObject *state, const char *key, long long *out)
{
    PyObject *value = get_key(state, key);
    if (value == NULL) {
        return -1;
    }
    int rc = -1;
    if (!PyLong_Check(value) || PyBool_Check(value)) {
        PyErr_Format(PyExc_TypeError, "%s must be an integer", key);
    }
    else {
        int overflow = 0;
        long long v = PyLong_AsLongLongAndOverflow(value, &overflow);
        if (!(v == -1 && PyErr_Occurred())) {
            if (overflow || v < 0) {
                PyErr_Format(PyExc_ValueError, "%s out of range: %R", key, value);
            }
            else {
                *out = v;
                rc = 0;
            }
        }
    }
    Py_DECREF(value);
    return rc;
}

static int
get_double(PyObject *state, const char *key, double *out)
{
    PyObject *value = get_key(state, key);
    if (value == NULL) {
        return -1;
    }
    int rc = -1;
    if (!PyFloat_Check(value) && !(PyLong_Check(value) && !PyBool_Check(value))) {
        PyErr_Format(PyExc_TypeError, "%s must be a number", key);
    }
    else {
        double v = PyFloat_AsDouble(value);
        if (!(v == -1.0 && PyErr_Occurred())) {
            *out = v;
            rc = 0;
        }
    }
    Py_DECREF(value);
    return rc;
}

/* Fill `levels` (n entries, zeroed) from a list of lists of numbers. */
static int
read_levels(PyObject *lists, Level *levels, Py_ssize_t n, int variances, const char *key)
{
    for (Py_ssize_t lv = 0; lv < n; lv++) {
        PyObject *items = PyList_GET_ITEM(lists, lv);
        if (!PyList_Check(items)) {
            PyErr_Format(PyExc_TypeError, "%s[%zd] must be a list", key, lv);
            return -1;
        }
        Level *l = &levels[lv];
        Py_ssize_t len = PyList_GET_SIZE(items);
        if (!variances) {
            while (l->cap < len) {
                if (grow_ring(l) < 0) {
                    return -1;
                }
            }
            l->len = len;
        }
        else if (len != l->len) {
            PyErr_Format(PyExc_ValueError, "bucket level %zd has inconsistent sizes", lv);
            return -1;
        }
        double *dst = variances ? l->v : l->t;
        for (Py_ssize_t k = 0; k < len; k++) {
            PyObject *item = PyList_GET_ITEM(items, k);
            if (!PyFloat_Check(item) && !(PyLong_Check(item) && !PyBool_Check(item))) {
                PyErr_Format(PyExc_TypeError, "%s must hold numbers", key);
                return -1;
            }
            double x = PyFloat_AsDouble(item);
            if (x == -1.0 && PyErr_Occurred()) {
                return -1;
            }
            dst[k] = x;
        }
    }
    return 0;
}

/* Restore a snapshot of `_export_state`'s layout. The semantic checks (canonical
   structure, covered width) are the caller's (detectors/adwin.py); this checks
   shapes and types, and changes nothing unless all of it reads. */
static PyObject *
Core_import_state(Core *s, PyObject *state)
{
    long long width, tick;
    double total, variance;
    if (get_count(state, "width", &width) < 0 || get_count(state, "tick", &tick) < 0 ||
        get_double(state, "total", &total) < 0 ||
        get_double(state, "variance", &variance) < 0) {
        return NULL;
    }
    PyObject *drift = get_key(state, "drift_detected");
    if (drift == NULL) {
        return NULL;
    }
    int drift_detected = drift == Py_True;
    int is_bool = PyBool_Check(drift);
    Py_DECREF(drift);
    if (!is_bool) {
        PyErr_SetString(PyExc_TypeError, "drift_detected must be a boolean");
        return NULL;
    }
    PyObject *tots = get_key(state, "bucket_totals");
    if (tots == NULL) {
        return NULL;
    }
    PyObject *vars = get_key(state, "bucket_variances");
    if (vars == NULL) {
        Py_DECREF(tots);
        return NULL;
    }
    Level *levels = NULL;
    Py_ssize_t n = 0;
    PyObject *result = NULL;
    if (!PyList_Check(tots) || !PyList_Check(vars)) {
        PyErr_SetString(PyExc_TypeError, "bucket_totals and bucket_variances must be lists");
        goto done;
    }
    n = PyList_GET_SIZE(tots);
    if (n < 1 || n != PyList_GET_SIZE(vars) || n > 64) {
        PyErr_SetString(PyExc_ValueError,
                        "bucket_totals and bucket_variances must have the same 1 to 64 levels");
        goto done;
    }
    levels = PyMem_Calloc((size_t)n, sizeof(Level));
    if (levels == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    if (read_levels(tots, levels, n, 0, "bucket_totals") < 0 ||
        read_levels(vars, levels, n, 1, "bucket_variances") < 0) {
        goto done;
    }
    /* commit */
    free_levels(s->levels, s->nalloc);
    s->levels = levels;
    s->nalloc = s->nlevels = (int)n;
    levels = NULL;
    s->width = (double)width;
    s->total = total;
    s->variance = variance;
    s->tick = tick;
    s->countdown = s->clock - tick % s->clock;
    s->drift_detected = (char)drift_detected;
    s->warning_detected = 0;
    result = Py_NewRef(Py_None);
done:
    if (levels != NULL) {
        free_levels(levels, (int)n);
    }
    Py_DECREF(tots);
    Py_DECREF(vars);
    return result;
}

/* -- the type ------------------------------------------------------------------ */

static PyObject *
Core_get_width(Core *s, void *Py_UNUSED(closure))
{
    return PyLong_FromDouble(s->width);
}

static PyGetSetDef Core_getset[] = {
    {"width", (getter)Core_get_width, NULL, "Number of values in the window.", NULL},
    {NULL},
};

static PyMemberDef Core_members[] = {
    {"total", T_DOUBLE, offsetof(Core, total), READONLY, "Sum of the values in the window."},
    {"variance", T_DOUBLE, offsetof(Core, variance), READONLY,
     "Sum of squared deviations from the mean in the window (river's ``variance``)."},
    {"drift_detected", T_BOOL, offsetof(Core, drift_detected), 0,
     "Whether the last update detected drift."},
    {"warning_detected", T_BOOL, offsetof(Core, warning_detected), 0,
     "Always False: ADWIN has no warning zone."},
    {NULL},
};

static PyMethodDef Core_methods[] = {
    {"update", (PyCFunction)Core_update, METH_O,
     "update(x) -> self\n\nConsume one finite observation; ``drift_detected`` says whether "
     "it caused a detection."},
    {"reset", (PyCFunction)Core_reset, METH_NOARGS,
     "Forget the window; keep the hyperparameters."},
    {"_update_array", (PyCFunction)Core_update_array, METH_O,
     "Consume a contiguous float64 buffer; return the indices of detections."},
    {"_configure", (PyCFunction)Core_configure, METH_VARARGS,
     "_configure(delta, clock, max_buckets, min_window_length, grace_period): set the "
     "hyperparameters (validated by the caller) and restart."},
    {"_export_state", (PyCFunction)Core_export_state, METH_NOARGS,
     "The window as a plain-JSON dict (the layout of ADWIN's snapshot state)."},
    {"_import_state", (PyCFunction)Core_import_state, METH_O,
     "Restore a dict of ``_export_state``'s layout (validated by the caller)."},
    {NULL},
};

static PyObject *
Core_new(PyTypeObject *type, PyObject *Py_UNUSED(args), PyObject *Py_UNUSED(kwds))
{
    if (type->tp_flags & Py_TPFLAGS_IS_ABSTRACT) { /* as object.__new__ does */
        return PyErr_Format(PyExc_TypeError, "Can't instantiate abstract class %s",
                            type->tp_name);
    }
    Core *s = (Core *)type->tp_alloc(type, 0);
    if (s == NULL) {
        return NULL;
    }
    /* river's defaults until _configure */
    s->delta = 0.002;
    s->clock = 32;
    s->max_buckets = 5;
    s->min_window_length = 5;
    s->grace_period = 10;
    s->levels = NULL;
    s->nalloc = s->nlevels = 0;
    if (add_level(s) < 0) {
        Py_DECREF(s);
        return NULL;
    }
    restart(s);
    return (PyObject *)s;
}

static void
Core_dealloc(Core *s)
{
    if (s->levels != NULL) {
        free_levels(s->levels, s->nalloc);
        s->levels = NULL;
    }
    Py_TYPE(s)->tp_free((PyObject *)s);
}

static PyTypeObject CoreType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "detectors._adwin_core.AdwinCore",
    .tp_doc = PyDoc_STR("The compiled ADWIN engine (a base class of detectors.ADWIN)."),
    .tp_basicsize = sizeof(Core),
    .tp_itemsize = 0,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_new = Core_new,
    .tp_dealloc = (destructor)Core_dealloc,
    .tp_methods = Core_methods,
    .tp_members = Core_members,
    .tp_getset = Core_getset,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "detectors._adwin_core",
    .m_doc = "The compiled engine of detectors.ADWIN (see detectors/_adwin_core.c).",
    .m_size = -1,
};

PyMODINIT_FUNC
PyInit__adwin_core(void)
{
    if (PyType_Ready(&CoreType) < 0) {
        return NULL;
    }
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) {
        return NULL;
    }
    if (PyModule_AddObjectRef(m, "AdwinCore", (PyObject *)&CoreType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
