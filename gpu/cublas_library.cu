#include <dlfcn.h>

#include <mutex>

#include "gpu/cublas_library.h"

namespace icam::gpu::detail {
namespace {

#define ICAM_STR2(x) #x
#define ICAM_STR(x) ICAM_STR2(x)

CublasLibrary load() {
  CublasLibrary lib;
  // The major version this file was compiled against first: its ABI matches the prototypes.
  const char* names[] = {"libcublas.so." ICAM_STR(CUBLAS_VER_MAJOR),
                         "/usr/local/cuda/lib64/libcublas.so." ICAM_STR(CUBLAS_VER_MAJOR)};
  void* handle = nullptr;
  for (const char* name : names) {
    handle = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (handle) {
      lib.loaded_from = name;
      break;
    }
    const char* why = dlerror();
    lib.error += std::string(lib.error.empty() ? "" : "; ") + (why ? why : name);
  }
  if (!handle) return lib;
  auto sym = [&](auto& fn, const char* name) {
    fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(handle, name));
    if (!fn && lib.error.empty()) lib.error = std::string("missing symbol ") + name;
  };
  sym(lib.create, "cublasCreate_v2");
  sym(lib.destroy, "cublasDestroy_v2");
  sym(lib.set_stream, "cublasSetStream_v2");
  sym(lib.set_math_mode, "cublasSetMathMode");
  CublasGemmExFn gemm = nullptr;
  sym(gemm, "cublasGemmEx");
  if (lib.create && lib.destroy && lib.set_stream && lib.set_math_mode && gemm) {
    lib.gemm_ex = gemm;
    lib.error.clear();
  }
  return lib;
}

}  // namespace

const CublasLibrary& cublas_library() {
  static std::once_flag once;
  static CublasLibrary lib;
  std::call_once(once, [] { lib = load(); });
  return lib;
}

}  // namespace icam::gpu::detail
