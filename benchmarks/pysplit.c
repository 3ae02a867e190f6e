/* pysplit: callgrind counts only while Python code of one group of files runs.
 *
 * benchmarks/h3_callgrind.py builds this with gcc (CPython 3.11 headers and
 * valgrind's callgrind.h) and loads it into a server run under
 * `valgrind --tool=callgrind --collect-atstart=no`. It installs a PEP 523
 * frame-evaluation function: every Python frame (call, or resumption of a
 * generator or coroutine) goes through `eval`, which looks up the group of
 * the frame's code (by its file name, cached in the code object's co_extra)
 * and turns callgrind's collection on while a frame of the measured group is
 * the innermost one, off otherwise. What C code a frame calls (aioquic's
 * packet protection, OpenSSL, a sendto) counts for the frame's group; C code
 * run with no Python frame of its own (uvloop's loop, between callbacks)
 * counts for the group of the frame that started the loop.
 *
 * Running a server once per group, each run's total is that group's share,
 * and the shares add up to a run that measures every group ("all"). With a
 * frame-evaluation function set, CPython 3.11 no longer inlines Python calls,
 * so the interpreter runs a little slower in every group alike; "plain"
 * counts everything without the hook. One thread: the state is global.
 */
#define PY_SSIZE_T_CLEAN
#define Py_BUILD_CORE
#include <Python.h>
#include <internal/pycore_frame.h>
#include <valgrind/callgrind.h>

#define GROUPS 16
static PyObject *patterns;  /* list of (group number, substring) */
static Py_ssize_t extra_index = -1;
static int measured = -1;   /* the group counted; GROUPS = every group */
static int current = 0;     /* group of the innermost frame; 0 = none yet */
static int collecting = 0;
static int inclusive = 0;   /* count while a frame of the group is anywhere on the stack */
static int depth = 0;       /* frames of the measured group on the stack (inclusive) */

static void set_collecting(int group) {
    int want = measured == GROUPS || group == measured;
    if (want != collecting) {
        CALLGRIND_TOGGLE_COLLECT;
        collecting = want;
    }
}

static int group_of(PyCodeObject *code) {
    void *cached = NULL;
    if (_PyCode_GetExtra((PyObject *)code, extra_index, &cached) == 0 && cached != NULL)
        return (int)(Py_intptr_t)cached - 2;  /* stored + 2: NULL is "not cached" */
    int group = 0;
    /* "file:qualname", so a pattern can name one function ("connection.py:Quic...") */
    PyObject *where = PyUnicode_FromFormat("%U:%U", code->co_filename, code->co_qualname);
    const char *file = where == NULL ? NULL : PyUnicode_AsUTF8(where);
    if (file == NULL) {
        PyErr_Clear();
    } else {
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(patterns); i++) {
            PyObject *item = PyList_GET_ITEM(patterns, i);
            const char *needle = PyUnicode_AsUTF8(PyTuple_GET_ITEM(item, 1));
            if (needle != NULL && strstr(file, needle) != NULL) {
                group = (int)PyLong_AsLong(PyTuple_GET_ITEM(item, 0));
                break;
            }
        }
    }
    Py_XDECREF(where);
    _PyCode_SetExtra((PyObject *)code, extra_index, (void *)(Py_intptr_t)(group + 2));
    return group;
}

static PyObject *eval_inclusive(PyThreadState *tstate, struct _PyInterpreterFrame *frame,
                                int exc) {
    int mine = group_of(frame->f_code) == measured;
    if (mine && depth++ == 0 && !collecting) {
        CALLGRIND_TOGGLE_COLLECT;
        collecting = 1;
    }
    PyObject *result = _PyEval_EvalFrameDefault(tstate, frame, exc);
    if (mine && --depth == 0 && collecting) {
        CALLGRIND_TOGGLE_COLLECT;
        collecting = 0;
    }
    return result;
}

static PyObject *eval(PyThreadState *tstate, struct _PyInterpreterFrame *frame, int exc) {
    int outer = current;
    int group = group_of(frame->f_code);
    if (group >= 0) {  /* a negative group: the caller's (code made by exec, dataclasses') */
        current = group;
        set_collecting(current);
    }
    PyObject *result = _PyEval_EvalFrameDefault(tstate, frame, exc);
    current = outer;
    set_collecting(current);
    return result;
}

/* install(patterns, measured, inclusive=0): patterns, a list of (group, substring of a file name), first
 * match wins, no match is group 0, a negative group counts for the caller's; measured, the
 * group to count (GROUPS: all of them; -1: all of them with no hook installed, as the
 * interpreter runs without one); inclusive, count while any frame of the measured group is on
 * the stack (a function with all it calls) rather than only while it is the innermost. */
static PyObject *install(PyObject *self, PyObject *args) {
    PyObject *list;
    if (!PyArg_ParseTuple(args, "O!i|p", &PyList_Type, &list, &measured, &inclusive))
        return NULL;
    if (measured < 0) {  /* plain: every instruction, no frame hook (CPython inlines calls) */
        CALLGRIND_TOGGLE_COLLECT;
        collecting = 1;
        Py_RETURN_NONE;
    }
    Py_XSETREF(patterns, Py_NewRef(list));
    extra_index = _PyEval_RequestCodeExtraIndex(NULL);
    if (extra_index < 0)
        return PyErr_Format(PyExc_RuntimeError, "no co_extra index left");
    _PyInterpreterState_SetEvalFrameFunc(PyInterpreterState_Get(),
                                         inclusive ? eval_inclusive : eval);
    Py_RETURN_NONE;
}

static PyObject *zero(PyObject *self, PyObject *unused) {
    CALLGRIND_ZERO_STATS;
    Py_RETURN_NONE;
}

static PyObject *dump(PyObject *self, PyObject *unused) {
    CALLGRIND_DUMP_STATS;
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"install", install, METH_VARARGS, "Count only frames of one group (see the module)."},
    {"zero", zero, METH_NOARGS, "Zero callgrind's counters."},
    {"dump", dump, METH_NOARGS, "Write callgrind's counters to a new dump file."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "pysplit", NULL, -1, methods};

PyMODINIT_FUNC PyInit_pysplit(void) { return PyModule_Create(&module); }
