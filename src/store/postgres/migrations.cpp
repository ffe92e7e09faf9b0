#include "switchyard/store/postgres/migrations.hpp"

#include "switchyard/core/file.hpp"

#include <pqxx/pqxx>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>

namespace switchyard::store::postgres {

namespace {

namespace fs = std::filesystem;

struct migration_file {
  std::string version;  // file name without ".sql"
  fs::path path;
};

// "NNNN_name.sql" -> number; nullopt for names that do not match.
std::optional<unsigned long long> version_number(const std::string& file_name) {
  constexpr std::string_view ext = ".sql";
  if (file_name.size() <= ext.size() || !file_name.ends_with(ext)) {
    return std::nullopt;
  }
  std::string_view stem(file_name.data(), file_name.size() - ext.size());
  std::size_t digits = 0;
  while (digits < stem.size() && std::isdigit(static_cast<unsigned char>(stem[digits])) != 0) {
    ++digits;
  }
  if (digits < 4 || digits > 18 || digits + 1 >= stem.size() || stem[digits] != '_') {
    return std::nullopt;
  }
  for (std::size_t i = digits + 1; i < stem.size(); ++i) {
    unsigned char ch = static_cast<unsigned char>(stem[i]);
    if (std::isalnum(ch) == 0 && ch != '_') {
      return std::nullopt;
    }
  }
  return std::stoull(std::string(stem.substr(0, digits)));
}

std::vector<migration_file> list_migrations(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    throw std::runtime_error("migrations: not a directory: " + dir);
  }
  std::map<unsigned long long, migration_file> by_number;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (!entry.is_regular_file()) {
      continue;
    }
    auto name = entry.path().filename().string();
    if (!name.ends_with(".sql")) {
      continue;  // README and friends
    }
    auto number = version_number(name);
    if (!number) {
      throw std::runtime_error("migrations: " + name + " is not named NNNN_name.sql (in " + dir + ")");
    }
    migration_file f{name.substr(0, name.size() - 4), entry.path()};
    auto [it, inserted] = by_number.emplace(*number, f);
    if (!inserted) {
      throw std::runtime_error("migrations: " + it->second.version + ".sql and " + name +
                               " have the same number (in " + dir + ")");
    }
  }
  std::vector<migration_file> out;
  out.reserve(by_number.size());
  for (auto& [n, f] : by_number) {
    out.push_back(std::move(f));
  }
  return out;
}

std::string read_file(const fs::path& p) {
  // A directory by a migration's name must not read as an empty migration (recorded as
  // applied, its statements never run).
  auto read = core::read_file(p.string());
  if (!read) {
    throw std::runtime_error("migrations: cannot read " + read.error);
  }
  return std::move(*read.text);
}

// Holds the session advisory lock; releases it on every exit path (if the session is
// gone, the server has released it already).
class advisory_lock {
 public:
  // Waits at most lock_wait for another instance's migrations: a db thread blocked here
  // for good would also block shutdown (db_executor::stop joins its threads). On timeout
  // the call fails and the gateway's background loop tries again a second later.
  explicit advisory_lock(pqxx::connection& c) : c_(c) {
    pqxx::nontransaction tx{c_};
    tx.exec(std::string("SET lock_timeout = '") + lock_wait + "'");
    try {
      tx.exec("SELECT pg_advisory_lock(" + std::to_string(migration_lock_key) + ")");
    } catch (...) {
      reset_timeout();
      throw;
    }
    reset_timeout();
  }
  ~advisory_lock() {
    try {
      if (c_.is_open()) {
        pqxx::nontransaction tx{c_};
        tx.exec("SELECT pg_advisory_unlock(" + std::to_string(migration_lock_key) + ")");
      }
    } catch (const std::exception& e) {
      spdlog::warn("migrations: could not release the advisory lock: {}", e.what());
    }
  }
  advisory_lock(const advisory_lock&) = delete;
  advisory_lock& operator=(const advisory_lock&) = delete;

 private:
  static constexpr const char* lock_wait = "10s";

  void reset_timeout() noexcept {
    try {
      if (c_.is_open()) {
        pqxx::nontransaction tx{c_};
        tx.exec("RESET lock_timeout");
      }
    } catch (...) {  // a broken connection is reopened by the executor anyway
    }
  }

  pqxx::connection& c_;
};

// Logs what a migration tells the operator (RAISE WARNING / NOTICE: e.g. rows it had to
// change so that a constraint applies) while it is registered; pqxx drops notices
// otherwise.
class notice_log final : public pqxx::errorhandler {
 public:
  notice_log(pqxx::connection& c, std::string version) : pqxx::errorhandler(c), version_(std::move(version)) {}
  bool operator()(const char msg[]) noexcept override {
    try {
      std::string_view text(msg);
      while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) {
        text.remove_suffix(1);
      }
      spdlog::warn("migrations: {}: {}", version_, text);
    } catch (...) {  // logging is best effort
    }
    return true;
  }

 private:
  std::string version_;
};

}  // namespace

std::vector<std::string> migrate_blocking(pqxx::connection& c, const std::string& migrations_dir) {
  auto files = list_migrations(migrations_dir);  // before locking: a bad dir fails fast

  advisory_lock lock{c};
  {
    pqxx::work tx{c};
    tx.exec(std::string("CREATE TABLE IF NOT EXISTS ") + migrations_table +
            " (version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())");
    tx.commit();
  }
  std::set<std::string> done;
  {
    pqxx::read_transaction tx{c};
    for (const auto& row : tx.exec(std::string("SELECT version FROM ") + migrations_table)) {
      done.insert(row[0].as<std::string>());
    }
  }

  std::vector<std::string> applied;
  for (const auto& f : files) {
    if (done.count(f.version) != 0) {
      continue;
    }
    auto sql = read_file(f.path);
    notice_log notices{c, f.version};
    pqxx::work tx{c};
    // The sessions' statement_timeout is sized for requests; a migration (an index on a
    // big table) may rightly take longer. LOCAL: it ends with this transaction.
    tx.exec("SET LOCAL statement_timeout = 0");
    try {
      tx.exec(sql);
    } catch (const pqxx::sql_error& e) {
      // Same exception type, with the file named (Postgres' text alone does not say which).
      throw pqxx::sql_error("migration " + f.version + ": " + e.what(), e.query(),
                            e.sqlstate().empty() ? nullptr : e.sqlstate().c_str());
    }
    tx.exec_params(std::string("INSERT INTO ") + migrations_table + " (version, applied_at) VALUES ($1, now())",
                   f.version);
    tx.commit();
    spdlog::info("migrations: applied {}", f.version);
    applied.push_back(f.version);
  }
  return applied;
}

}  // namespace switchyard::store::postgres
