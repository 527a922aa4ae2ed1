// fastlight._C: an importable module whose only job is to load the library; the ops register themselves
// through TORCH_LIBRARY in ops.cpp when this shared object is loaded.
#include <Python.h>

static struct PyModuleDef fastlight_module = {PyModuleDef_HEAD_INIT, "_C",
                                              "fastlight native kernels (ops live in torch.ops.fastlight)", -1,
                                              nullptr};

PyMODINIT_FUNC PyInit__C(void) { return PyModule_Create(&fastlight_module); }
