// Logging setup: asynchronous spdlog loggers (stderr, one background thread); access
// lines go through their own batched writer thread (one write() per 50 ms, see log.cpp).
// Text lines by default, one JSON object per line with litellm_settings.json_logs.
// Call init_logging() once from main before the loop starts; loggers are thread-safe
// and never block the caller (the queue overruns its oldest entry when full).
#pragma once
#include <string>
#include <string_view>

namespace switchyard::core {

enum class log_format { text, json };

void init_logging(log_format fmt, std::string_view level = "info");
void set_log_format(log_format fmt);
log_format current_log_format();
void shutdown_logging();

// JSON string escaping (without the surrounding quotes).
void json_escape_to(std::string& out, std::string_view s);

// One access line. In text mode: "access <method> <path> <status> ...".
// In JSON mode: {"time","level","message":"access",<fields>}.
struct access_record {
  std::string_view method;
  std::string_view path;
  int status = 0;
  std::string_view model;
  double duration_ms = 0;
  std::string_view key_redacted;  // "sk-...abcd" or empty
  std::string_view call_id;
};
void log_access(const access_record& r);
// An info line that is written whatever the log level, as the access lines are: the
// line that says where the gateway listens (uvicorn's "running on" is likewise written
// whatever LITELLM_LOG says). Same shape as the other info lines.
void log_notice(std::string_view message);
// `path` with every virtual key in it (`sk-` and at least five more key characters, not
// inside a longer word) cut to "sk-..." and its last four characters; `path` itself when
// it names none, else a view of `scratch`. Access logs write paths through it.
std::string_view redacted_path(std::string_view path, std::string& scratch);
// Appends `ms` with three decimals (as "%.3f"): the access line's duration_ms.
void append_millis(std::string& out, double ms);

}  // namespace switchyard::core
