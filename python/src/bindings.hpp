// The parts of the extension module levattn._levattn, one function per source file.
#pragma once

#include <pybind11/pybind11.h>

namespace levattn::python {

void bind_errors(pybind11::module_& m);     // module.cpp: Error, InputError, ComputeError
void bind_attention(pybind11::module_& m);  // attention.cpp
void bind_scores(pybind11::module_& m);     // scores.cpp
void bind_stream(pybind11::module_& m);     // stream.cpp
void bind_presses(pybind11::module_& m);    // presses.cpp

}  // namespace levattn::python
