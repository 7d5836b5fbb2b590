# Every third-party dependency comes from a Debian package. A missing one stops configure and names
# the package to install (scripts/bootstrap installs them all).
find_package(PkgConfig REQUIRED)

macro(manifold_require found package)
  if(NOT ${found})
    message(FATAL_ERROR "Missing dependency: install the Debian package '${package}' "
                        "(scripts/bootstrap installs every package Manifold needs)")
  endif()
endmacro()

find_package(CAF 0.17)
manifold_require(CAF_FOUND libcaf-dev)

find_package(OpenSSL QUIET)
manifold_require(OPENSSL_FOUND libssl-dev)

find_package(Boost 1.74 QUIET COMPONENTS system)
manifold_require(Boost_FOUND "libboost-dev libboost-system-dev")

find_package(msgpack QUIET CONFIG)
manifold_require(msgpack_FOUND libmsgpack-cxx-dev)

find_package(prometheus-cpp QUIET CONFIG)
manifold_require(prometheus-cpp_FOUND prometheus-cpp-dev)

find_package(CLI11 QUIET CONFIG)
manifold_require(CLI11_FOUND libcli11-dev)

find_package(yaml-cpp QUIET CONFIG)
manifold_require(yaml-cpp_FOUND libyaml-cpp-dev)

find_package(nlohmann_json 3 QUIET CONFIG)
manifold_require(nlohmann_json_FOUND nlohmann-json3-dev)

pkg_check_modules(MOSQUITTO QUIET IMPORTED_TARGET libmosquitto)
manifold_require(MOSQUITTO_FOUND libmosquitto-dev)

pkg_check_modules(MODBUS QUIET IMPORTED_TARGET libmodbus)
manifold_require(MODBUS_FOUND libmodbus-dev)

find_package(Threads REQUIRED)

if(MANIFOLD_BUILD_TESTS OR NOT DEFINED MANIFOLD_BUILD_TESTS)
  find_package(GTest QUIET)
  manifold_require(GTest_FOUND "libgtest-dev libgmock-dev")
endif()
if(MANIFOLD_BUILD_BENCH OR NOT DEFINED MANIFOLD_BUILD_BENCH)
  find_package(benchmark QUIET CONFIG)
  manifold_require(benchmark_FOUND libbenchmark-dev)
endif()
