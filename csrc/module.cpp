// fastlight._C: loading this module registers the ops (TORCH_LIBRARY in ops.cpp, torch.ops.fastlight.*).
//
// It also offers eager fast paths for the ops that take long tensor lists (the optimizer steps): the
// generic torch.ops binding converts each list element to an IValue with schema checks, about a
// microsecond per tensor, which for 10,000 params x 5 lists costs more than the step itself. These entry
// points unpack the Python lists directly and call the same dispatcher op (so CPU/CUDA selection and every
// check are unchanged). fastlight.ops uses them in eager mode and torch.ops.fastlight under torch.compile.
#include <Python.h>

#include <ATen/core/LegacyTypeDispatch.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/core/GradMode.h>
#include <torch/csrc/autograd/python_variable.h>

#include <exception>
#include <vector>

namespace {

bool unpack_list(PyObject* obj, const char* name, std::vector<at::Tensor>& out) {
  if (!PyList_Check(obj) && !PyTuple_Check(obj)) {
    PyErr_Format(PyExc_TypeError, "%s must be a list of tensors", name);
    return false;
  }
  PyObject* seq = obj;
  const Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
  PyObject** items = PySequence_Fast_ITEMS(seq);
  out.reserve(static_cast<size_t>(n));
  for (Py_ssize_t i = 0; i < n; ++i) {
    if (!THPVariable_Check(items[i])) {
      PyErr_Format(PyExc_TypeError, "%s[%zd] is not a tensor", name, i);
      return false;
    }
    out.push_back(THPVariable_Unpack(items[i]));
  }
  return true;
}

bool unpack_tensor(PyObject* obj, const char* name, at::Tensor& out) {
  if (!THPVariable_Check(obj)) {
    PyErr_Format(PyExc_TypeError, "%s must be a tensor", name);
    return false;
  }
  out = THPVariable_Unpack(obj);
  return true;
}

bool unpack_optional(PyObject* obj, const char* name, c10::optional<at::Tensor>& out) {
  if (obj == Py_None) return true;
  at::Tensor t;
  if (!unpack_tensor(obj, name, t)) return false;
  out = std::move(t);
  return true;
}

// Runs fn without the GIL; C++ exceptions become RuntimeError with torch's message.
template <typename Fn>
PyObject* call_released(Fn&& fn) {
  std::exception_ptr err;
  Py_BEGIN_ALLOW_THREADS;
  try {
    c10::AutoGradMode no_grad(false);  // an in-place update of leaf params, as in optimizer.step()
    // Straight to the CPU/CUDA kernel: the autograd fallback of a custom op is a boxed kernel that converts
    // every list element to an IValue (the cost this path exists to avoid). The mutated tensors' version
    // counters are bumped by hand below, as ADInplaceOrView would.
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    fn();
  } catch (...) {
    err = std::current_exception();
  }
  Py_END_ALLOW_THREADS;
  if (err) {
    try {
      std::rethrow_exception(err);
    } catch (const c10::Error& e) {
      PyErr_SetString(PyExc_RuntimeError, e.what_without_backtrace());
    } catch (const std::exception& e) {
      PyErr_SetString(PyExc_RuntimeError, e.what());
    }
    return nullptr;
  }
  Py_RETURN_NONE;
}

using OptT = c10::optional<at::Tensor>;

// In-place updates must still invalidate autograd graphs that saved these tensors.
void bump_versions(const std::vector<at::Tensor>& ts) {
  for (const auto& t : ts)
    if (t.defined()) t.unsafeGetTensorImpl()->bump_version();
}

PyObject* py_adam_step(PyObject*, PyObject* args) {
  PyObject *o_params, *o_grads, *o_m, *o_v, *o_vmax, *o_steps, *o_lr, *o_scale, *o_inf;
  double beta1, beta2, weight_decay, eps;
  int amsgrad, maximize, decoupled;
  if (!PyArg_ParseTuple(args, "OOOOOOOddddpppOO:adam_step_", &o_params, &o_grads, &o_m, &o_v, &o_vmax, &o_steps,
                        &o_lr, &beta1, &beta2, &weight_decay, &eps, &amsgrad, &maximize, &decoupled, &o_scale,
                        &o_inf))
    return nullptr;
  std::vector<at::Tensor> params, grads, m, v, vmax, steps;
  at::Tensor lr;
  OptT scale, inf;
  if (!unpack_list(o_params, "params", params) || !unpack_list(o_grads, "grads", grads) ||
      !unpack_list(o_m, "exp_avgs", m) || !unpack_list(o_v, "exp_avg_sqs", v) ||
      !unpack_list(o_vmax, "max_exp_avg_sqs", vmax) || !unpack_list(o_steps, "state_steps", steps) ||
      !unpack_tensor(o_lr, "lr", lr) || !unpack_optional(o_scale, "grad_scale", scale) ||
      !unpack_optional(o_inf, "found_inf", inf))
    return nullptr;
  return call_released([&] {
    static auto op = c10::Dispatcher::singleton()
                         .findSchemaOrThrow("fastlight::adam_step_", "")
                         .typed<void(at::TensorList, at::TensorList, at::TensorList, at::TensorList,
                                     at::TensorList, at::TensorList, const at::Tensor&, double, double, double,
                                     double, bool, bool, bool, const OptT&, const OptT&)>();
    op.call(params, grads, m, v, vmax, steps, lr, beta1, beta2, weight_decay, eps, amsgrad != 0, maximize != 0,
            decoupled != 0, scale, inf);
    for (const auto* l : {&params, &m, &v, &vmax, &steps}) bump_versions(*l);
  });
}

PyObject* py_sgd_step(PyObject*, PyObject* args) {
  PyObject *o_params, *o_grads, *o_bufs, *o_lr, *o_scale, *o_inf;
  double weight_decay, momentum, dampening;
  int nesterov, maximize, first;
  if (!PyArg_ParseTuple(args, "OOOOdddpppOO:sgd_step_", &o_params, &o_grads, &o_bufs, &o_lr, &weight_decay,
                        &momentum, &dampening, &nesterov, &maximize, &first, &o_scale, &o_inf))
    return nullptr;
  std::vector<at::Tensor> params, grads, bufs;
  at::Tensor lr;
  OptT scale, inf;
  if (!unpack_list(o_params, "params", params) || !unpack_list(o_grads, "grads", grads) ||
      !unpack_list(o_bufs, "momentum_buffers", bufs) || !unpack_tensor(o_lr, "lr", lr) ||
      !unpack_optional(o_scale, "grad_scale", scale) || !unpack_optional(o_inf, "found_inf", inf))
    return nullptr;
  return call_released([&] {
    static auto op = c10::Dispatcher::singleton()
                         .findSchemaOrThrow("fastlight::sgd_step_", "")
                         .typed<void(at::TensorList, at::TensorList, at::TensorList, const at::Tensor&, double,
                                     double, double, bool, bool, bool, const OptT&, const OptT&)>();
    op.call(params, grads, bufs, lr, weight_decay, momentum, dampening, nesterov != 0, maximize != 0, first != 0,
            scale, inf);
    bump_versions(params);
    bump_versions(bufs);
  });
}

PyMethodDef fastlight_methods[] = {
    {"adam_step_", py_adam_step, METH_VARARGS, "Eager fast path of torch.ops.fastlight.adam_step_ (same arguments)."},
    {"sgd_step_", py_sgd_step, METH_VARARGS, "Eager fast path of torch.ops.fastlight.sgd_step_ (same arguments)."},
    {nullptr, nullptr, 0, nullptr}};

struct PyModuleDef fastlight_module = {PyModuleDef_HEAD_INIT, "_C",
                                       "fastlight native kernels (ops live in torch.ops.fastlight)", -1,
                                       fastlight_methods};

}  // namespace

PyMODINIT_FUNC PyInit__C(void) { return PyModule_Create(&fastlight_module); }
