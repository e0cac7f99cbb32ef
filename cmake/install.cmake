# Install rules and the Debian package (included from the top-level CMakeLists.txt when
# LEVATTN_INSTALL is on): headers, the library, the tools and their manual pages, a CMake package
# (find_package(levattn CONFIG) → levattn::levattn) and a pkg-config file (levattn.pc).
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(LEVATTN_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/levattn)

install(TARGETS levattn EXPORT levattnTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT dev
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT lib NAMELINK_COMPONENT dev
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/levattn DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} COMPONENT dev)
install(FILES ${PROJECT_BINARY_DIR}/include/levattn/version.hpp
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/levattn COMPONENT dev)
install(EXPORT levattnTargets NAMESPACE levattn:: DESTINATION ${LEVATTN_CMAKE_DIR} COMPONENT dev)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/levattnConfig.cmake.in
  ${PROJECT_BINARY_DIR}/levattnConfig.cmake INSTALL_DESTINATION ${LEVATTN_CMAKE_DIR})
# Before 1.0 a new minor version may break the API: only the same major.minor is compatible.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/levattnConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/levattnConfig.cmake ${PROJECT_BINARY_DIR}/levattnConfigVersion.cmake
        DESTINATION ${LEVATTN_CMAKE_DIR} COMPONENT dev)

# levattn.pc: the prefix is found from the file's own place, so the install may move.
file(RELATIVE_PATH LEVATTN_PC_TO_PREFIX /${CMAKE_INSTALL_LIBDIR}/pkgconfig /)
set(LEVATTN_PC_PREFIX "\${pcfiledir}/${LEVATTN_PC_TO_PREFIX}")
string(REGEX REPLACE "/$" "" LEVATTN_PC_PREFIX "${LEVATTN_PC_PREFIX}")
# A static archive brings its private dependencies (pkg-config --static); a shared library carries them.
string(JOIN " " LEVATTN_PC_PRIVATE ${BLAS_LIBRARIES} ${OpenMP_CXX_FLAGS})
configure_file(${PROJECT_SOURCE_DIR}/cmake/levattn.pc.in ${PROJECT_BINARY_DIR}/levattn.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/levattn.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig COMPONENT dev)

# The tools, and a manual page for each from its --help (help2man, when installed).
find_program(LEVATTN_HELP2MAN help2man)
set(levattn_cli_summary "heavy attention with universal sets: leverage scores, heavy entries, exact attention")
set(levattn_mpi_summary "the universal set and every heavy entry with keys split across MPI ranks")
foreach(tool levattn_cli levattn_mpi)
  if(NOT TARGET ${tool})
    continue()
  endif()
  install(TARGETS ${tool} RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT bin)
  if(LEVATTN_HELP2MAN)
    get_target_property(name ${tool} OUTPUT_NAME)
    add_custom_command(OUTPUT ${PROJECT_BINARY_DIR}/man/${name}.1
      COMMAND ${CMAKE_COMMAND} -DTOOL=$<TARGET_FILE:${tool}> "-DSUMMARY=${${tool}_summary}" -DVERSION=${PROJECT_VERSION}
              -DHELP2MAN=${LEVATTN_HELP2MAN} -DOUT=${PROJECT_BINARY_DIR}/man/${name}.1
              -P ${PROJECT_SOURCE_DIR}/cmake/man_page.cmake
      DEPENDS ${tool} ${PROJECT_SOURCE_DIR}/cmake/man_page.cmake VERBATIM)
    add_custom_target(${tool}_man ALL DEPENDS ${PROJECT_BINARY_DIR}/man/${name}.1)
    install(FILES ${PROJECT_BINARY_DIR}/man/${name}.1 DESTINATION ${CMAKE_INSTALL_MANDIR}/man1 COMPONENT bin)
  endif()
endforeach()
if(TARGET levattn_cli)
  install(FILES ${PROJECT_SOURCE_DIR}/tools/plot_eval.py DESTINATION ${CMAKE_INSTALL_DATADIR}/levattn COMPONENT bin)
endif()
if(NOT LEVATTN_HELP2MAN)
  message(STATUS "help2man not found: the tools' manual pages are not built (apt-get install help2man)")
endif()

# make package: one Debian package with the tools and the development files.
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME levattn)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "heavy attention with universal sets (LevAttention): leverage scores, heavy entries, exact attention")
set(LEVATTN_PACKAGED_TOOLS "the levattn tool")
if(TARGET levattn_mpi)
  set(LEVATTN_PACKAGED_TOOLS "the levattn and levattn-mpi tools")
endif()
set(CPACK_PACKAGE_DESCRIPTION
    "levattn finds every large attention entry of every query from a set of keys chosen by their leverage scores, and computes exact and selected attention. This package holds ${LEVATTN_PACKAGED_TOOLS}, the C++ headers, the library, its CMake package and its pkg-config file.")
set(CPACK_PACKAGE_CONTACT "levattn developers <levattn@users.noreply.invalid>")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION science)
# The tools' run-time libraries come from dpkg-shlibdeps; building against the package needs a C++20
# compiler and the OpenMP build of OpenBLAS that the library was linked with.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "libopenblas-openmp-dev")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "cmake, pkg-config, g++, openmpi-bin, python3-matplotlib")
include(CPack)
