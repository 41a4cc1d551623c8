# Compiler flags and the helpers every component's CMakeLists.txt uses.

set(TRELLIS_WARNINGS
    -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wstrict-prototypes -Wmissing-prototypes
    -Wvla -Wpointer-arith -Wcast-qual -Wundef)

# _POSIX_C_SOURCE for the POSIX calls (fsync, mkstemp, getline) under strict C11.
add_compile_definitions(_POSIX_C_SOURCE=200809L _DEFAULT_SOURCE)
add_compile_options(${TRELLIS_WARNINGS} -fno-common)

if(TRELLIS_SANITIZE)
    add_compile_options(-fsanitize=address,undefined -fno-sanitize-recover=all
                        -fno-omit-frame-pointer)
    add_link_options(-fsanitize=address,undefined -fno-sanitize-recover=all)
endif()
if(TRELLIS_TSAN)
    add_compile_options(-fsanitize=thread -fno-omit-frame-pointer)
    add_link_options(-fsanitize=thread)
endif()
if(TRELLIS_FUZZ)
    # Every library is instrumented for coverage; only the fuzz targets link libFuzzer's main.
    add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer)
    add_link_options(-fsanitize=address,undefined)
endif()

set(TRELLIS_INCLUDE_DIR ${PROJECT_SOURCE_DIR}/include)

# trellis_library(NAME SOURCES ... [LIBS ...])
# A static library of one component; public headers live in include/trellis/.
function(trellis_library name)
    cmake_parse_arguments(ARG "" "" "SOURCES;LIBS" ${ARGN})
    add_library(${name} STATIC ${ARG_SOURCES})
    target_include_directories(${name} PUBLIC ${TRELLIS_INCLUDE_DIR}
                               PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
    target_link_libraries(${name} PUBLIC ${ARG_LIBS})
endfunction()

# trellis_unit_test(NAME SOURCES ... [LIBS ...] [LABELS ...])
# One cmocka binary per module, registered with CTest under the label "unit" (plus LABELS).
function(trellis_unit_test name)
    cmake_parse_arguments(ARG "" "" "SOURCES;LIBS;LABELS" ${ARGN})
    add_executable(${name} ${ARG_SOURCES})
    target_include_directories(${name} PRIVATE ${TRELLIS_INCLUDE_DIR}
                               ${PROJECT_SOURCE_DIR}/tests/support)
    target_link_libraries(${name} PRIVATE ${ARG_LIBS} trellis_test_dirs PkgConfig::DEP_CMOCKA)
    add_test(NAME ${name} COMMAND ${name})
    set_tests_properties(${name} PROPERTIES LABELS "unit;${ARG_LABELS}"
        ENVIRONMENT "TRELLIS_SOURCE_DIR=${PROJECT_SOURCE_DIR};TRELLIS_BUILD_DIR=${PROJECT_BINARY_DIR};CMOCKA_MESSAGE_OUTPUT=stdout")
endfunction()

# trellis_integration_test(NAME SCRIPT [LABELS ...] [TIMEOUT s])
# A script under tests/integration/ run against real processes on loopback.
function(trellis_integration_test name script)
    cmake_parse_arguments(ARG "" "TIMEOUT" "LABELS" ${ARGN})
    if(NOT ARG_TIMEOUT)
        set(ARG_TIMEOUT 300)
    endif()
    add_test(NAME ${name} COMMAND bash ${script})
    set_tests_properties(${name} PROPERTIES LABELS "integration;${ARG_LABELS}"
        TIMEOUT ${ARG_TIMEOUT}
        ENVIRONMENT "TRELLIS_SOURCE_DIR=${PROJECT_SOURCE_DIR};TRELLIS_BUILD_DIR=${PROJECT_BINARY_DIR}")
endfunction()

# trellis_fuzz_target(NAME SOURCES ... [LIBS ...])
# A libFuzzer target; its seed corpus lives in fuzz/NAME/corpus/.
function(trellis_fuzz_target name)
    cmake_parse_arguments(ARG "" "" "SOURCES;LIBS" ${ARGN})
    add_executable(${name} ${ARG_SOURCES})
    target_include_directories(${name} PRIVATE ${TRELLIS_INCLUDE_DIR})
    target_link_libraries(${name} PRIVATE ${ARG_LIBS})
    target_link_options(${name} PRIVATE -fsanitize=fuzzer)
endfunction()

# Adds every immediate subdirectory of the current one that has a CMakeLists.txt, so a new
# component is picked up by creating its folder.
function(trellis_add_subdirectories)
    file(GLOB children LIST_DIRECTORIES true RELATIVE ${CMAKE_CURRENT_SOURCE_DIR}
         ${CMAKE_CURRENT_SOURCE_DIR}/*)
    list(SORT children)
    foreach(child ${children})
        if(IS_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR}/${child}
           AND EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/${child}/CMakeLists.txt)
            add_subdirectory(${child})
        endif()
    endforeach()
endfunction()

# trellis_program(TARGET): what every program of the release build links besides its own
# libraries. With TRELLIS_TCMALLOC, tcmalloc replaces the C library's malloc for the whole
# process, OpenSSL's many small allocations included (docs/decisions.md, "Allocator"); it is
# linked even though no symbol of it is named, which --as-needed would drop.
function(trellis_program target)
    if(TRELLIS_TCMALLOC)
        target_link_libraries(${target} PRIVATE "-Wl,--push-state,--no-as-needed"
                              PkgConfig::DEP_TCMALLOC "-Wl,--pop-state")
    endif()
endfunction()
