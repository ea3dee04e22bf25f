# Compiler flags, sanitizers and per-ISA source handling.

if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$")
  set(LQ_ARCH_X86 1)
  set(LQ_ARCH_ARM 0)
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "^(aarch64|arm64)$")
  set(LQ_ARCH_X86 0)
  set(LQ_ARCH_ARM 1)
else()
  set(LQ_ARCH_X86 0)
  set(LQ_ARCH_ARM 0)
endif()

set(LQ_FLAGS_AVX2 -mavx2 -mfma -mf16c -mbmi2)
set(LQ_FLAGS_AVX512 -mavx2 -mfma -mf16c -mbmi2 -mavx512f -mavx512bw -mavx512vl
    -mavx512dq -mavx512vnni -mavx512vbmi)
set(LQ_FLAGS_NEON "")   # NEON is baseline on aarch64

function(lq_target_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow
    -Wstrict-prototypes -Wmissing-prototypes -Wpointer-arith -Wvla
    -Wformat=2 -Wundef -Wcast-qual -Wno-unused-parameter)
  # Flow-sensitive "may be used uninitialized" (gcc's -Wmaybe-uninitialized is
  # in -Wall and most precise at -O3, CMake's Release level; clang needs the
  # conditional variant): newer compilers warn more, so the tree stays clean
  # under the stricter setting of each.
  if(CMAKE_C_COMPILER_ID MATCHES "Clang")
    target_compile_options(${target} PRIVATE -Wconditional-uninitialized)
  else()
    target_compile_options(${target} PRIVATE -Wmaybe-uninitialized)
  endif()
  if(LQ_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
  target_compile_definitions(${target} PRIVATE
    LQ_ARCH_X86=${LQ_ARCH_X86} LQ_ARCH_ARM=${LQ_ARCH_ARM})
endfunction()

# Drop ISA files of other architectures and attach ISA flags to the rest.
function(lq_filter_isa_sources var)
  set(out "")
  foreach(f ${${var}})
    if(f MATCHES "_(avx2|avx512)\\.c$")
      if(NOT LQ_ARCH_X86)
        continue()
      endif()
      if(f MATCHES "_avx2\\.c$")
        set_source_files_properties(${f} PROPERTIES COMPILE_OPTIONS "${LQ_FLAGS_AVX2}")
      else()
        set_source_files_properties(${f} PROPERTIES COMPILE_OPTIONS "${LQ_FLAGS_AVX512}")
      endif()
    elseif(f MATCHES "_neon\\.c$")
      if(NOT LQ_ARCH_ARM)
        continue()
      endif()
    endif()
    list(APPEND out ${f})
  endforeach()
  set(${var} ${out} PARENT_SCOPE)
endfunction()

if(LQ_SANITIZE)
  add_compile_options(-fsanitize=${LQ_SANITIZE} -fno-omit-frame-pointer
                      -fno-sanitize-recover=all)
  add_link_options(-fsanitize=${LQ_SANITIZE})
endif()
