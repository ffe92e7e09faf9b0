// Wiring: owns the io_context, the HTTP server, the stages and the stores, and
// routes each request to its handler. run() blocks the calling thread running the
// loop until a graceful stop completes. Nothing else depends on app/.
#pragma once
#include "switchyard/app/options.hpp"
#include "switchyard/config/config.hpp"

#include <memory>

namespace switchyard::app {

class gateway {
 public:
  gateway(options opts, std::shared_ptr<const config::config> cfg);
  ~gateway();
  gateway(const gateway&) = delete;
  gateway& operator=(const gateway&) = delete;

  // Binds the listener (throws std::system_error), then runs the loop until
  // SIGTERM/SIGINT and the drain complete. Returns the process exit code.
  int run();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace switchyard::app
