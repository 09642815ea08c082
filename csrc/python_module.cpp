// An empty Python module, so that `import rowconv_ext._C` loads the shared
// library and with it the TORCH_LIBRARY registrations. The ops themselves are
// reached through torch.ops.rowconv; no pybind11 is needed.
#include <Python.h>

// PyMODINIT_FUNC: extern "C" and exported despite -fvisibility=hidden.
PyMODINIT_FUNC PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module_def);
}
