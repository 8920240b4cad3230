#include <algorithm>
#include <utility>

#include "gpu/cublas_library.h"
#include "gpu/cuda_check.h"
#include "gpu/dequantize.h"
#include "gpu/matmul.h"
#include "gpu/matvec.h"

namespace icam::gpu {
namespace {

const char* cublas_status_name(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS:
      return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED:
      return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED:
      return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE:
      return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH:
      return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR:
      return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED:
      return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR:
      return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED:
      return "CUBLAS_STATUS_NOT_SUPPORTED";
    default:
      return "cuBLAS error";
  }
}

Status cublas_status(cublasStatus_t s, const char* what) {
  if (s == CUBLAS_STATUS_SUCCESS) return ok_status();
  return make_error(Errc::unavailable, "cuBLAS: ", what, ": ", cublas_status_name(s), " (",
                    static_cast<int>(s), ")");
}

}  // namespace

Result<Matmul> Matmul::create(StreamHandle stream, const MatmulOptions& options) {
  Matmul m;
  m.stream_ = stream;
  m.options_ = options;
  if (!options.use_cublas) {
    m.note_ = "cuBLAS disabled by options";
    return std::move(m);
  }
  const detail::CublasLibrary& lib = detail::cublas_library();
  if (!lib.ok()) {
    m.note_ = "cuBLAS not loaded (" + lib.error + "); large batches use icam's matvec kernels";
    return std::move(m);
  }
  cublasHandle_t handle = nullptr;
  ICAM_TRY(cublas_status(lib.create(&handle), "cublasCreate"));
  m.handle_ = handle;  // owned from here: the destructor releases it on any later failure
  ICAM_TRY(cublas_status(lib.set_stream(handle, stream), "cublasSetStream"));
  ICAM_TRY(cublas_status(
      lib.set_math_mode(handle, options.tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH),
      "cublasSetMathMode"));
  m.tile_ = ICAM_TRY(DeviceBuffer::allocate(options.tile_bytes, "matmul weight tile"));
  m.note_ = "cuBLAS from " + lib.loaded_from;
  return std::move(m);
}

Matmul::Matmul(Matmul&& other) noexcept
    : stream_(other.stream_),
      options_(other.options_),
      handle_(other.handle_),
      tile_(std::move(other.tile_)),
      note_(std::move(other.note_)) {
  other.handle_ = nullptr;
}

Matmul& Matmul::operator=(Matmul&& other) noexcept {
  if (this != &other) {
    if (handle_) detail::cublas_library().destroy(static_cast<cublasHandle_t>(handle_));
    stream_ = other.stream_;
    options_ = other.options_;
    handle_ = other.handle_;
    tile_ = std::move(other.tile_);
    note_ = std::move(other.note_);
    other.handle_ = nullptr;
  }
  return *this;
}

Matmul::~Matmul() {
  if (handle_) detail::cublas_library().destroy(static_cast<cublasHandle_t>(handle_));
}

Status Matmul::run(const DeviceWeight& w, const float* x, int64_t batch, float* y, int64_t ldy) {
  if (batch <= 0 || w.rows == 0) return ok_status();
  if (handle_ != nullptr && batch > options_.gemm_min_batch) return gemm(w, x, batch, y, ldy);
  return matvec(w, x, batch, y, ldy, stream_);
}

// Row-major W (rows x cols) is, to column-major cuBLAS, a cols x rows matrix A with lda = cols;
// x (batch x cols, row-major) is a cols x batch matrix B with ldb = cols; y (batch rows of ldy)
// is a column-major rows x batch matrix C with ldc = ldy. So C = op(A)^T B, tile by tile of rows.
Status Matmul::gemm(const DeviceWeight& w, const float* x, int64_t batch, float* y, int64_t ldy) {
  if (ldy < w.rows)
    return make_error(Errc::invalid_argument, "matmul: ldy ", ldy, " < rows ", w.rows);
  const detail::CublasLibrary& lib = detail::cublas_library();
  const auto handle = static_cast<cublasHandle_t>(handle_);
  const int64_t row_floats = w.cols;
  const int64_t tile_rows =
      std::max<int64_t>(1, static_cast<int64_t>(tile_.bytes() / sizeof(float)) / row_floats);
  const float alpha = 1.0f, beta = 0.0f;
  const cublasComputeType_t compute =
      options_.tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  if (static_cast<uint64_t>(row_floats) * sizeof(float) > tile_.bytes())
    return make_error(Errc::invalid_argument, "matmul: a row of ", w.cols,
                      " floats does not fit the ", tile_.bytes(), "-byte tile");
  for (int64_t row0 = 0; row0 < w.rows; row0 += tile_rows) {
    const int64_t n_rows = std::min(tile_rows, w.rows - row0);
    // The stream orders this after the previous tile's product, so the scratch can be reused.
    ICAM_TRY(dequantize_rows(w, row0, n_rows, tile_.as<float>(), stream_));
    ICAM_TRY(
        cublas_status(lib.gemm_ex(handle, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(n_rows),
                                  static_cast<int>(batch), static_cast<int>(w.cols), &alpha,
                                  tile_.data(), CUDA_R_32F, static_cast<int>(w.cols), x, CUDA_R_32F,
                                  static_cast<int>(w.cols), &beta, y + row0, CUDA_R_32F,
                                  static_cast<int>(ldy), compute, CUBLAS_GEMM_DEFAULT),
                      "cublasGemmEx"));
  }
  return ok_status();
}

}  // namespace icam::gpu
