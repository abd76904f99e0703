// fofa/kernels/kernels.hpp — the one include for code that calls kernels (layers, model).
//
// Brings in the KernelTable contract and its selection (kernels(), available_kernels()),
// the scalar references (templated on T, for tests and autograd) and the checked,
// TensorView-based wrappers that throw fofa::Error naming shapes on misuse.
#pragma once

#include "fofa/kernels/kernel_table.hpp"
#include "fofa/kernels/reference.hpp"
#include "fofa/kernels/checked.hpp"
