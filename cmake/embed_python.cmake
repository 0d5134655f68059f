# Turns one Python source file into a C++ header holding its bytes, so the worker embeds the
# file at build time with no tool beyond CMake. Run as a script (cmake -P) by the build:
#   cmake -DINPUT=<abs .py> -DSOURCE_NAME=<path in the repository> -DOUTPUT=<header> -P this
# The header defines, in namespace aiowsgi::worker::embedded, for foo_bar.py:
#   kFooBarFile[]   the file name tracebacks show: "<aiowsgi>/" + SOURCE_NAME
#   kFooBarSource[] the file's bytes, NUL-terminated
foreach(var INPUT SOURCE_NAME OUTPUT)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "embed_python.cmake: -D${var}=... is required")
  endif()
endforeach()

# The identifier: foo_bar.py -> kFooBar.
get_filename_component(stem "${INPUT}" NAME_WE)
string(REPLACE "_" ";" words "${stem}")
set(ident "k")
foreach(word IN LISTS words)
  string(SUBSTRING "${word}" 0 1 first)
  string(SUBSTRING "${word}" 1 -1 rest)
  string(TOUPPER "${first}" first)
  string(APPEND ident "${first}${rest}")
endforeach()
if(NOT ident MATCHES "^k[A-Za-z0-9]+$")
  message(FATAL_ERROR "embed_python.cmake: ${INPUT}: the file name makes no C++ identifier")
endif()

set(file_name "<aiowsgi>/${SOURCE_NAME}")
if(file_name MATCHES "[\"\\\\]")
  message(FATAL_ERROR "embed_python.cmake: ${SOURCE_NAME}: quote or backslash in the name")
endif()

# Every byte as a \xNN escape, 32 to a line: exact for any byte, no tool needed. A NUL byte
# would end the source early, so it is refused.
file(READ "${INPUT}" hex HEX)
string(LENGTH "${hex}" hex_len)
set(body "")
set(pos 0)
while(pos LESS hex_len)
  string(SUBSTRING "${hex}" ${pos} 64 chunk)
  if(chunk MATCHES "^(..)*00")
    message(FATAL_ERROR "embed_python.cmake: ${INPUT} contains a NUL byte")
  endif()
  string(REGEX REPLACE "(..)" "\\\\x\\1" chunk "${chunk}")
  string(APPEND body "    \"${chunk}\"\n")
  math(EXPR pos "${pos} + 64")
endwhile()
if(body STREQUAL "")
  set(body "    \"\"\n")
endif()

file(WRITE "${OUTPUT}" "\
// Generated at build time from ${SOURCE_NAME} by cmake/embed_python.cmake:
// edit the .py file, not this one.
#pragma once

namespace aiowsgi::worker::embedded {

inline constexpr char ${ident}File[] = \"${file_name}\";

inline constexpr char ${ident}Source[] =
${body};

}  // namespace aiowsgi::worker::embedded
")
