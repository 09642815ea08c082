// The Python module, so that importing it (rowconv_ext._C, or the test
// module rowconv_ext._cuda_emulation) loads the shared library and with it
// its TORCH_LIBRARY registrations. The ops themselves are reached through
// torch.ops; _C also holds the decode step's eager entry
// (python_fast_calls.cpp, where ROWCONV_FAST_CALLS is defined). ROWCONV_MODULE
// names the module.
#include <Python.h>

#ifndef ROWCONV_MODULE
#define ROWCONV_MODULE _C
#endif
#define ROWCONV_CONCAT_(a, b) a##b
#define ROWCONV_CONCAT(a, b) ROWCONV_CONCAT_(a, b)
#define ROWCONV_STRING_(a) #a
#define ROWCONV_STRING(a) ROWCONV_STRING_(a)

#ifdef ROWCONV_FAST_CALLS
extern PyMethodDef rowconv_fast_methods[];  // python_fast_calls.cpp
#define ROWCONV_METHODS rowconv_fast_methods
#else
#define ROWCONV_METHODS nullptr
#endif

// PyMODINIT_FUNC: extern "C" and exported despite -fvisibility=hidden.
PyMODINIT_FUNC ROWCONV_CONCAT(PyInit_, ROWCONV_MODULE)(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, ROWCONV_STRING(ROWCONV_MODULE),
                                          nullptr, -1, ROWCONV_METHODS};
  return PyModule_Create(&module_def);
}
