# Checks that the objects built with SIMD flags (src/CMakeLists.txt: the *_avx2, *_avx512 and bf16
# files) share no code with the rest of a program: every function they define outside their own
# kernel namespaces is local, so the linker can never pick one of their copies (compiled with AVX2
# or AVX-512 instructions) for a portable caller. Fails on any weak (W, w, V, v) or unique (u)
# symbol, on any global function (T) or global data (D, B, R, G) outside levattn::detail and
# levattn::kernels (the kernel-set entry points), and on common (C) symbols other than those listed
# in kSharedData below.
#   cmake -DNM=<nm> -DOBJECTS="<a.o;b.o>" -P simd_symbols.cmake
# Allowed, being data and not code: DW.ref.__gxx_personality_v0 (a pointer to the C++ runtime's
# personality routine, the same bytes in every object) and the common symbols of kSharedData: the
# empty function objects of std::ranges, and Eigen's cache-size table (with its guard), which every
# copy of Eigen's code fills with the same values from CPUID.
set(kSharedData "^(std::ranges::|(guard variable for )?Eigen::internal::manage_caching_sizes\\(.*\\)::m_cacheSizes$)")
if(NOT NM OR NOT OBJECTS)
  message(FATAL_ERROR "usage: cmake -DNM=<nm> -DOBJECTS=<list> -P simd_symbols.cmake")
endif()
set(failures "")
set(checked 0)
foreach(object IN LISTS OBJECTS)
  if(NOT object MATCHES "(avx2|avx512|bf16)\\.cpp\\.o$")
    continue()
  endif()
  math(EXPR checked "${checked} + 1")
  execute_process(COMMAND ${NM} -C --defined-only ${object} OUTPUT_VARIABLE listing RESULT_VARIABLE status)
  if(NOT status EQUAL 0)
    message(FATAL_ERROR "${NM} failed on ${object}")
  endif()
  string(REPLACE "\n" ";" lines "${listing}")
  foreach(line IN LISTS lines)
    if(NOT line MATCHES "^[0-9a-f]* ([A-Za-z]) (.*)$")
      continue()
    endif()
    set(type ${CMAKE_MATCH_1})
    set(name "${CMAKE_MATCH_2}")
    if(name STREQUAL "DW.ref.__gxx_personality_v0")
      continue()
    endif()
    if(type MATCHES "^[WwVvu]$" OR (type MATCHES "^[TDBRG]$" AND NOT name MATCHES "^levattn::(detail|kernels)::")
       OR (type STREQUAL "C" AND NOT name MATCHES "${kSharedData}"))
      list(APPEND failures "${object}: ${type} ${name}")
    endif()
  endforeach()
endforeach()
if(checked EQUAL 0)
  message(FATAL_ERROR "no SIMD object among the ${OBJECTS}")
endif()
if(failures)
  list(JOIN failures "\n  " shown)
  message(FATAL_ERROR "symbols the linker could share with portable code:\n  ${shown}")
endif()
message(STATUS "${checked} SIMD objects share no code with portable callers")
