// A bfloat16 matrix product with float32 accumulation as an XLA FFI custom call on the CPU:
// oneMKL's cblas_gemm_bf16bf16f32, which runs on Intel AMX tiles and AVX512-BF16 where the CPU
// has them. gan_jax/mkl_gemm.py builds this file (against the pinned jaxlib's FFI headers and
// the mkl wheel's libmkl_rt) and registers the handler; model.conv_impl='mkl' calls it.
//
//   c[..., M, N] = op(a)[..., M, K] @ op(b)[..., K, N],  op(x) = x or its last two axes swapped
//
// a and b are bfloat16 with the same leading (batch) dimensions, c is float32. The prototypes
// are MKL's (mkl_cblas.h, mkl_service.h of mkl-include 2026.2, LP64: MKL_INT is int), declared
// here so that the build needs the shared library only.

#include <cstdint>
#include <cstdlib>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

extern "C" {
void cblas_gemm_bf16bf16f32(int layout, int transa, int transb, int m, int n, int k,
                            float alpha, const uint16_t* a, int lda, const uint16_t* b, int ldb,
                            float beta, float* c, int ldc);
int MKL_Set_Threading_Layer(int code);
}

namespace {

constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112;  // CBLAS_LAYOUT, CBLAS_TRANSPOSE
constexpr int kThreadingGnu = 3;                                // MKL_THREADING_GNU

// MKL's threads from GNU OpenMP (the system's libgomp), not Intel's: set once, before the
// first product, unless MKL_THREADING_LAYER chose otherwise (MKL reads it at that point too).
const int kThreading = [] {
  return std::getenv("MKL_THREADING_LAYER") ? -1 : MKL_Set_Threading_Layer(kThreadingGnu);
}();

ffi::Error Bf16Gemm(ffi::AnyBuffer a, ffi::AnyBuffer b, ffi::Result<ffi::AnyBuffer> c,
                    bool trans_a, bool trans_b) {
  if (a.element_type() != ffi::BF16 || b.element_type() != ffi::BF16 ||
      c->element_type() != ffi::F32) {
    return ffi::Error::InvalidArgument("gan_bf16_gemm: bfloat16 operands, float32 result");
  }
  auto ad = a.dimensions(), bd = b.dimensions(), cd = c->dimensions();
  const size_t rank = ad.size();
  if (rank < 2 || bd.size() != rank || cd.size() != rank) {
    return ffi::Error::InvalidArgument("gan_bf16_gemm: operands of equal rank >= 2");
  }
  int64_t batch = 1;
  for (size_t i = 0; i + 2 < rank; ++i) {
    if (ad[i] != bd[i] || ad[i] != cd[i]) {
      return ffi::Error::InvalidArgument("gan_bf16_gemm: unequal batch dimensions");
    }
    batch *= ad[i];
  }
  const int64_t m = trans_a ? ad[rank - 1] : ad[rank - 2];
  const int64_t k = trans_a ? ad[rank - 2] : ad[rank - 1];
  const int64_t kb = trans_b ? bd[rank - 1] : bd[rank - 2];
  const int64_t n = trans_b ? bd[rank - 2] : bd[rank - 1];
  if (k != kb || cd[rank - 2] != m || cd[rank - 1] != n) {
    return ffi::Error::InvalidArgument("gan_bf16_gemm: shapes do not multiply");
  }
  if (m > INT32_MAX || n > INT32_MAX || k > INT32_MAX || ad[rank - 1] > INT32_MAX ||
      bd[rank - 1] > INT32_MAX) {
    return ffi::Error::InvalidArgument("gan_bf16_gemm: a dimension over 2^31 - 1");
  }
  const auto* pa = static_cast<const uint16_t*>(a.untyped_data());
  const auto* pb = static_cast<const uint16_t*>(b.untyped_data());
  auto* pc = static_cast<float*>(c->untyped_data());
  for (int64_t i = 0; i < batch; ++i) {
    if (k == 0) {  // an empty sum: MKL may leave c as it was
      for (int64_t j = 0; j < m * n; ++j) pc[i * m * n + j] = 0.0f;
      continue;
    }
    cblas_gemm_bf16bf16f32(kRowMajor, trans_a ? kTrans : kNoTrans, trans_b ? kTrans : kNoTrans,
                           static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), 1.0f,
                           pa + i * m * k, static_cast<int>(ad[rank - 1]), pb + i * k * n,
                           static_cast<int>(bd[rank - 1]), 0.0f, pc + i * m * n,
                           static_cast<int>(n));
  }
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(GanBf16Gemm, Bf16Gemm,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Attr<bool>("trans_a")
                                  .Attr<bool>("trans_b"));
