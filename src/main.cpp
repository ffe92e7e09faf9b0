// switchyard: a LiteLLM-compatible LLM gateway. Thin entry point; see app/.
#include "switchyard/admin/sso.hpp"
#include "switchyard/app/gateway.hpp"
#include "switchyard/app/options.hpp"
#include "switchyard/app/supervisor.hpp"
#include "switchyard/auth/jwt_auth.hpp"
#include "switchyard/config/config.hpp"
#include "switchyard/core/log.hpp"
#include "switchyard/http/server.hpp"
#include "switchyard/spend/prices.hpp"

#include <spdlog/spdlog.h>

#include <malloc.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <cstring>
#include <cstdio>
#include <exception>
#include <iostream>
#include <system_error>

namespace {

// glibc's per-thread cache (tcache) keeps at most 7 freed chunks per size by default.
// Under load the loop has hundreds of requests' small chunks (header strings, handler
// and operation objects) alive at once and frees them in bursts, so most frees spilled
// into malloc's bins and the next allocations took the slow path (_int_malloc,
// consolidation, unlinking: ~3% of the gateway's CPU at 64 connections in bench/).
// 1024 per size keeps them in the cache; it holds no more than the peak that
// was live anyway. (tcache only covers chunks up to 1032 bytes, and glibc 2.36 ignores
// larger glibc.malloc.tcache_max values: bigger blocks have their own free lists, see
// switchyard/core/block_cache.hpp.) The cache can only be sized through GLIBC_TUNABLES,
// read at exec, so the process re-executes itself once with it set (the pid is kept).
// SWITCHYARD_NO_MALLOC_TUNING=1 disables this (e.g. under valgrind, which would not
// follow the exec).
constexpr const char* malloc_tunables = "glibc.malloc.tcache_count=1024";

void tune_malloc_and_reexec(char** argv) {
  if (std::getenv("SWITCHYARD_NO_MALLOC_TUNING") != nullptr || std::getenv("SWITCHYARD_MALLOC_TUNED") != nullptr) {
    return;
  }
  std::string tunables = malloc_tunables;
  if (const char* have = std::getenv("GLIBC_TUNABLES"); have != nullptr && *have != '\0') {
    tunables += ":" + std::string(have);  // later entries win: the user's settings override ours
  }
  if (setenv("GLIBC_TUNABLES", tunables.c_str(), 1) != 0 || setenv("SWITCHYARD_MALLOC_TUNED", "1", 1) != 0) {
    return;
  }
  // The binary's real path, not /proc/self/exe: the process name (ps, top, pgrep) comes
  // from the executed file's name.
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) {
    return;  // no /proc: run untuned
  }
  self[n] = '\0';
  execv(self, argv);
  // exec failed: run untuned.
}

}  // namespace

int main(int argc, char** argv) {
  using namespace switchyard;
  tune_malloc_and_reexec(argv);
  // A peer that goes away mid-write must cost an error code, never the process.
  std::signal(SIGPIPE, SIG_IGN);
  {
    // A SIGHUP means "reload". Until the gateway (or the supervisor) handles it, one that
    // arrives during the start waits, instead of ending the process (its default action);
    // every thread started meanwhile inherits the mask, so it later reaches the handler.
    sigset_t hup;
    sigemptyset(&hup);
    sigaddset(&hup, SIGHUP);
    sigprocmask(SIG_BLOCK, &hup, nullptr);
  }
  // Request bodies of 100 KB-32 MB are allocated and freed on every request. glibc's
  // defaults mmap() them or trim the heap after each free, so every request paid ~250
  // fresh page faults per MB (measured in bench/). Keep them in the heap and
  // trim only past 64 MB of free space at its top; the peak RSS does not change.
  mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
  mallopt(M_TRIM_THRESHOLD, 64 * 1024 * 1024);
  std::vector<std::string> args(argv + 1, argv + argc);
  auto parsed = app::parse_options(args);
  if (!parsed.error.empty()) {
    std::cerr << "switchyard: " << parsed.error << "\n\n" << app::usage_text();
    return 2;
  }
  const auto& opts = parsed.opts;
  if (opts.show_help) {
    std::cout << app::usage_text();
    return 0;
  }
  if (opts.show_version) {
    std::cout << "switchyard " << SWITCHYARD_VERSION << "\n";
    return 0;
  }

  std::shared_ptr<const config::config> cfg;
  config::load_options lo;
  try {
    // Models written without a provider prefix are placed by the price table's
    // litellm_provider, as LiteLLM does (claude-* is anthropic); no table: all openai.
    auto prices = std::make_shared<spend::price_table>();
    if (auto shipped = spend::price_table::load_blocking(spend::shipped_prices_path())) {
      *prices = std::move(*shipped);
    }
    lo.bare_model_provider = [prices](std::string_view model) -> std::string {
      const auto* p = prices->find(model);
      return p != nullptr ? p->provider : std::string();
    };
    cfg = config::load_config_blocking(opts.config_path, lo);
  } catch (const config::config_error& e) {
    std::cerr << "switchyard: config error: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "switchyard: config error: " << opts.config_path << ": " << e.what() << "\n";
    return 2;
  }
  {
    // Sign-in and JWT auth settings live partly in the environment (docs/sso.md): checked
    // here so a half-configured provider is a config error (exit 2, --check-config too).
    const auto env = [](const char* name) {
      const char* v = std::getenv(name);
      return std::string(v != nullptr ? v : "");
    };
    auto jwt = auth::jwt_auth_settings::from(cfg->general.raw, env);
    auto sso = admin::sso_settings::from(cfg->general.raw, cfg->litellm.raw, cfg->general.master_key, env);
    if (!jwt || !sso) {
      std::cerr << "switchyard: config error: " << opts.config_path << ": "
                << (!jwt ? jwt.error().message : sso.error().message) << "\n";
      return 2;
    }
  }
  if (opts.check_only) {
    for (const auto& w : cfg->warnings) {
      std::cerr << "switchyard: warning: " << w << "\n";
    }
    // One line per key the config uses that the gateway recognises but does not act on:
    // "unsupported: <key> (<file>:<line>): <what happens instead>".
    for (const auto& u : cfg->unsupported) {
      std::cout << "unsupported: " << u.key << " (" << u.origin << "): " << u.note << "\n";
    }
    std::cout << opts.config_path << ": OK (" << cfg->model_list.size() << " deployments, "
              << cfg->unsupported.size() << " unsupported keys)\n";
    return 0;
  }

  // HTTPS: the command line, else SSL_CERTFILE_PATH / SSL_KEYFILE_PATH, else
  // general_settings. Checked here, before anything listens or a worker starts.
  auto tls_opts = opts;
  {
    auto pick = [](std::string& out, const char* env, const std::string& from_config) {
      if (!out.empty()) {
        return;
      }
      if (const char* v = std::getenv(env); v != nullptr && *v != '\0') {
        out = v;
      } else {
        out = from_config;
      }
    };
    pick(tls_opts.ssl_certfile_path, "SSL_CERTFILE_PATH", cfg->general.ssl_certfile_path);
    pick(tls_opts.ssl_keyfile_path, "SSL_KEYFILE_PATH", cfg->general.ssl_keyfile_path);
    if (auto err = http::check_tls_files(tls_opts.ssl_certfile_path, tls_opts.ssl_keyfile_path); !err.empty()) {
      std::cerr << "switchyard: config error: " << err << "\n";
      return 2;
    }
  }

  // One gateway: one event loop. With --num_workers N each worker process runs this,
  // and the config warnings are logged once (by worker 0).
  const auto run_gateway = [&cfg](const app::options& o, int worker) {
    const auto level = app::choose_log_level(o.debug, std::getenv("LITELLM_LOG"));
    core::init_logging(cfg->litellm.json_logs ? core::log_format::json : core::log_format::text, level.level);
    if (worker == 0) {
      if (!level.warning.empty()) {
        spdlog::warn("{}", level.warning);
      }
      for (const auto& w : cfg->warnings) {
        spdlog::warn("config: {}", w);
      }
      if (auto summary = config::unsupported_summary(*cfg); !summary.empty()) {
        spdlog::warn("config: {}", summary);
      }
    }
    int rc = 0;
    try {
      app::gateway gw(o, cfg);
      rc = gw.run();
    } catch (const std::system_error& e) {
      spdlog::critical("{}", e.what());
      rc = 1;
    } catch (const std::exception& e) {
      spdlog::critical("fatal: {}", e.what());
      rc = 1;
    }
    core::shutdown_logging();
    return rc;
  };
  if (tls_opts.num_workers > 1) {
    // The parent keeps the config a restarted worker starts with: on SIGHUP it re-reads the
    // file as the workers do (a file that does not load leaves the old one; the workers
    // report why).
    const auto reread = [&cfg, &lo, &opts] {
      try {
        cfg = config::load_config_blocking(opts.config_path, lo);
      } catch (const std::exception& e) {
        std::cerr << "switchyard: SIGHUP: the config does not load, restarted workers keep the previous one: "
                  << e.what() << "\n";
      }
    };
    return app::supervise(tls_opts, run_gateway, reread);
  }
  return run_gateway(tls_opts, 0);
}
