// levattn._levattn: the extension module under the Python package (levattn/__init__.py wraps it).
// Library errors become Python exceptions: Error{bad_input} → levattn.InputError (a ValueError),
// Error{failure} → levattn.ComputeError (a RuntimeError); both derive from levattn.Error.
#include "bindings.hpp"
#include "levattn/core/error.hpp"
#include "levattn/version.hpp"

namespace levattn::python {

namespace py = pybind11;

namespace {
PyObject* g_input_error = nullptr;
PyObject* g_compute_error = nullptr;

PyObject* new_exception(const char* name, const char* doc, PyObject* a, PyObject* b) {
  PyObject* bases = PyTuple_Pack(2, a, b);
  if (bases == nullptr) throw py::error_already_set();
  PyObject* type = PyErr_NewExceptionWithDoc(name, doc, bases, nullptr);
  Py_DECREF(bases);
  if (type == nullptr) throw py::error_already_set();
  return type;
}
}  // namespace

void bind_errors(py::module_& m) {
  PyObject* error =
      PyErr_NewExceptionWithDoc("levattn.Error", "Base of every exception levattn raises.", PyExc_Exception, nullptr);
  if (error == nullptr) throw py::error_already_set();
  g_input_error =
      new_exception("levattn.InputError", "Bad input: shape, dtype, device, NaN/Inf, or a parameter out of range.",
                    error, PyExc_ValueError);
  g_compute_error =
      new_exception("levattn.ComputeError", "The computation failed (e.g. Lewis weights did not converge).", error,
                    PyExc_RuntimeError);
  m.add_object("Error", py::handle(error));
  m.add_object("InputError", py::handle(g_input_error));
  m.add_object("ComputeError", py::handle(g_compute_error));
  py::register_local_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const levattn::Error& e) {
      PyErr_SetString(e.kind() == ErrorKind::bad_input ? g_input_error : g_compute_error, e.what());
    }
  });
}

}  // namespace levattn::python

PYBIND11_MODULE(_levattn, m) {
  m.doc() = "levattn's compiled core; use the levattn package, which wraps it.";
  m.attr("__version__") = LEVATTN_VERSION_STRING;
  levattn::python::bind_errors(m);
  levattn::python::bind_attention(m);
  levattn::python::bind_scores(m);
  levattn::python::bind_stream(m);
  levattn::python::bind_presses(m);
}
