// Forward declaration of pqxx::connection (libpqxx 6.4, Debian 12), so that headers of
// store/postgres can name `pqxx::connection&` without pulling libpqxx into every includer.
// In libpqxx 6.x `pqxx::connection` is an alias of basic_connection_base<connect_direct>;
// redeclaring the same alias when <pqxx/pqxx> is included later is legal C++. If libpqxx
// moves to 7.x (where connection is a plain class), replace this with `class connection;`.
#pragma once

namespace pqxx {
class connect_direct;
template <typename ConnectPolicy>
class basic_connection_base;
using connection = basic_connection_base<connect_direct>;
}  // namespace pqxx
