# Warnings and sanitizers shared by every icam target, applied through icam_compile_options().
add_library(icam_warnings INTERFACE)
target_compile_options(icam_warnings INTERFACE
  $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wnon-virtual-dtor -Wno-missing-field-initializers>
  $<$<AND:$<COMPILE_LANGUAGE:CXX>,$<CXX_COMPILER_ID:GNU>>:-Wshadow=local>)

if(ICAM_SANITIZE)
  add_compile_options($<$<COMPILE_LANGUAGE:CXX,C>:-fsanitize=address,undefined>
                      $<$<COMPILE_LANGUAGE:CXX,C>:-fno-omit-frame-pointer>
                      $<$<COMPILE_LANGUAGE:CXX,C>:-fno-sanitize-recover=undefined>)
  add_link_options(-fsanitize=address,undefined)
endif()

# Kernels with AVX2/FMA are compiled per file with these flags and chosen at run time by CPU
# features, so the binaries still run on machines without AVX2.
set(ICAM_AVX2_FLAGS -mavx2 -mfma -mf16c)
