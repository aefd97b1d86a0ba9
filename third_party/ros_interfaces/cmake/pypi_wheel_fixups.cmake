# Correct the include directories that the PyPI ROS 2 wheels export for their
# `<pkg>__rosidl_generator_py` targets.
#
# The wheels were built in a manylinux container, and their exported CMake
# targets still name that machine's Python and NumPy headers
# (/opt/python/cp311-cp311/include/python3.11 and
# .../site-packages/numpy/_core/include). CMake refuses to generate a build
# that links against a target with a non-existent include directory. Instead of
# editing the installed wheels, every imported target of this directory is
# rewritten here, at configure time, to use the headers of the Python that
# builds this package (found by FindPython3, which rosidl_generator_py runs).
#
# Call pypi_wheel_fixups() at the end of the CMakeLists.txt, after
# rosidl_generate_interfaces() and ament_package().

function(pypi_wheel_fixups)
  set(_bad_prefix "/opt/python/cp311-cp311")
  if(NOT Python3_INCLUDE_DIRS OR NOT Python3_NumPy_INCLUDE_DIRS)
    find_package(Python3 REQUIRED COMPONENTS Interpreter Development.Module NumPy)
  endif()
  get_directory_property(_targets IMPORTED_TARGETS)
  set(_fixed 0)
  foreach(_target IN LISTS _targets)
    get_target_property(_dirs ${_target} INTERFACE_INCLUDE_DIRECTORIES)
    if(NOT _dirs OR NOT _dirs MATCHES "^${_bad_prefix}/|;${_bad_prefix}/")
      continue()
    endif()
    set(_new_dirs "")
    foreach(_dir IN LISTS _dirs)
      if(_dir MATCHES "^${_bad_prefix}/.*/numpy/")
        list(APPEND _new_dirs ${Python3_NumPy_INCLUDE_DIRS})
      elseif(_dir MATCHES "^${_bad_prefix}/include/")
        list(APPEND _new_dirs ${Python3_INCLUDE_DIRS})
      elseif(_dir MATCHES "^${_bad_prefix}/")
        message(FATAL_ERROR "pypi_wheel_fixups: no rule for ${_dir} of ${_target}")
      else()
        list(APPEND _new_dirs "${_dir}")
      endif()
    endforeach()
    list(REMOVE_DUPLICATES _new_dirs)
    set_target_properties(${_target} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${_new_dirs}")
    math(EXPR _fixed "${_fixed} + 1")
  endforeach()
  message(STATUS "pypi_wheel_fixups: corrected the include directories of ${_fixed} imported targets")
endfunction()
