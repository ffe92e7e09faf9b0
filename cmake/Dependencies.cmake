# Third-party libraries, all from Debian 12 packages (scripts/deps.sh installs them).
find_package(Threads REQUIRED)
find_package(Boost 1.81 REQUIRED CONFIG COMPONENTS headers)
find_package(OpenSSL REQUIRED)
find_package(nlohmann_json 3.10 REQUIRED)
find_package(fmt REQUIRED)
find_package(spdlog REQUIRED)
find_package(yaml-cpp REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(PQXX REQUIRED IMPORTED_TARGET libpqxx)
pkg_check_modules(HIREDIS REQUIRED IMPORTED_TARGET hiredis)

# Headers every module may see (they are in the PCH). Marked SYSTEM: their warnings are not ours.
add_library(sy_thirdparty INTERFACE)
target_link_libraries(sy_thirdparty INTERFACE
  Boost::headers OpenSSL::SSL OpenSSL::Crypto nlohmann_json::nlohmann_json
  spdlog::spdlog fmt::fmt Threads::Threads)
