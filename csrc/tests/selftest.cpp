// Calls every registered fastlight op through the torch dispatcher, as Python would, and checks the
// results against values computed here. Run by CTest after the CMake build.
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>

#include <cmath>
#include <cstdio>
#include <vector>

static int failures = 0;

static void expect(bool ok, const char* what) {
  std::printf("%s %s\n", ok ? "ok  " : "FAIL", what);
  if (!ok) ++failures;
}

int main() {
  auto op = c10::Dispatcher::singleton()
                .findSchemaOrThrow("fastlight::grad_stats", "")
                .typed<at::Tensor(at::TensorList)>();
  std::vector<at::Tensor> ts = {at::arange(5, at::kFloat), at::ones({1000}, at::kDouble),
                                at::full({7}, 2.0, at::kBFloat16)};
  at::Tensor out = op.call(ts);
  const double want = (0 + 1 + 4 + 9 + 16) + 1000 + 7 * 4;
  expect(std::fabs(out[0].item<double>() - want) < 1e-3, "grad_stats sum of squares");
  expect(out[1].item<float>() == 0.f, "grad_stats finite flag");
  ts[1][500] = NAN;
  expect(op.call(ts)[1].item<float>() == 1.f, "grad_stats flags nan");
  bool threw = false;
  try {
    op.call({at::ones({4, 4}).t()});
  } catch (const c10::Error&) {
    threw = true;
  }
  expect(threw, "grad_stats rejects non-contiguous input");
  std::printf("%d passed, %d failed\n", 4 - failures, failures);
  return failures == 0 ? 0 : 1;
}
