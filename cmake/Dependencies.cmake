# Every external library comes from a Debian package (scripts/install-deps) and is found through
# pkg-config, so one mechanism covers them all.
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)

pkg_check_modules(DEP_OPENSSL REQUIRED IMPORTED_TARGET libssl>=3.0 libcrypto>=3.0)
pkg_check_modules(DEP_LIBEVENT REQUIRED IMPORTED_TARGET
    libevent_core>=2.1 libevent_extra>=2.1 libevent_openssl>=2.1 libevent_pthreads>=2.1)
pkg_check_modules(DEP_JANSSON REQUIRED IMPORTED_TARGET jansson>=2.13)
pkg_check_modules(DEP_CBOR REQUIRED IMPORTED_TARGET libcbor>=0.8)
pkg_check_modules(DEP_INIH REQUIRED IMPORTED_TARGET inih)
pkg_check_modules(DEP_SQLITE REQUIRED IMPORTED_TARGET sqlite3>=3.34)
pkg_check_modules(DEP_PQ REQUIRED IMPORTED_TARGET libpq)
pkg_check_modules(DEP_CURL REQUIRED IMPORTED_TARGET libcurl>=7.74)
pkg_check_modules(DEP_MOSQUITTO REQUIRED IMPORTED_TARGET libmosquitto>=2.0)
if(TRELLIS_TCMALLOC)
    if(TRELLIS_SANITIZE OR TRELLIS_TSAN OR TRELLIS_FUZZ)
        message(FATAL_ERROR "TRELLIS_TCMALLOC: the sanitizers bring their own allocator")
    endif()
    pkg_check_modules(DEP_TCMALLOC REQUIRED IMPORTED_TARGET libtcmalloc_minimal)
endif()
if(TRELLIS_TESTS)
    pkg_check_modules(DEP_CMOCKA REQUIRED IMPORTED_TARGET cmocka>=1.1)
endif()
