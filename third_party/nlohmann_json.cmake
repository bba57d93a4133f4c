# nlohmann/json (header-only) parses every JSON file longspec reads (util/json.cc). It is a build
# requirement in pyproject.toml, taken from the `nlohmann-json` PyPI wheel, which ships the
# headers but no CMake config: ask the Python that CMake found where the wheel put them. Without
# the wheel, a system install with a CMake config (Debian nlohmann-json3-dev) also serves.
# Override with -DLONGSPEC_NLOHMANN_JSON_INCLUDE_DIR=/path/containing/nlohmann.
if(NOT LONGSPEC_NLOHMANN_JSON_INCLUDE_DIR)
  find_package(Python 3.9 COMPONENTS Interpreter)
  if(Python_Interpreter_FOUND)
    execute_process(
      COMMAND ${Python_EXECUTABLE} -c "import nlohmann_json; print(nlohmann_json.get_include())"
      OUTPUT_VARIABLE _nlohmann_inc OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE _nlohmann_rc ERROR_QUIET)
    if(_nlohmann_rc EQUAL 0 AND EXISTS "${_nlohmann_inc}/nlohmann/json.hpp")
      set(LONGSPEC_NLOHMANN_JSON_INCLUDE_DIR "${_nlohmann_inc}" CACHE PATH "directory holding nlohmann/json.hpp")
    endif()
  endif()
endif()

add_library(longspec_nlohmann_json INTERFACE)
if(LONGSPEC_NLOHMANN_JSON_INCLUDE_DIR AND EXISTS "${LONGSPEC_NLOHMANN_JSON_INCLUDE_DIR}/nlohmann/json.hpp")
  target_include_directories(longspec_nlohmann_json SYSTEM INTERFACE ${LONGSPEC_NLOHMANN_JSON_INCLUDE_DIR})
  message(STATUS "longspec: nlohmann/json headers at ${LONGSPEC_NLOHMANN_JSON_INCLUDE_DIR}")
else()
  find_package(nlohmann_json 3.11 CONFIG QUIET)
  if(NOT nlohmann_json_FOUND)
    message(FATAL_ERROR "longspec needs the nlohmann/json headers: `python3 -m pip install nlohmann-json` "
                        "(for the Python that CMake finds), or pass -DLONGSPEC_NLOHMANN_JSON_INCLUDE_DIR=...")
  endif()
  target_link_libraries(longspec_nlohmann_json INTERFACE nlohmann_json::nlohmann_json)
  message(STATUS "longspec: nlohmann/json ${nlohmann_json_VERSION} from ${nlohmann_json_DIR}")
endif()
