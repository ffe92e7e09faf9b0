#include "switchyard/core/log.hpp"

#include <fmt/format.h>
#include <spdlog/async.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <memory>

namespace switchyard::core {

namespace {

log_format g_format = log_format::text;
std::shared_ptr<spdlog::logger> g_access;

// %j: the message payload JSON-escaped.
class json_payload_flag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&, spdlog::memory_buf_t& dest) override {
    std::string out;
    json_escape_to(out, std::string_view(msg.payload.data(), msg.payload.size()));
    dest.append(out.data(), out.data() + out.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override { return std::make_unique<json_payload_flag>(); }
};

std::unique_ptr<spdlog::formatter> make_formatter(const std::string& pattern) {
  auto f = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc);
  f->add_flag<json_payload_flag>('j').set_pattern(pattern);
  return f;
}

void apply_patterns() {
  if (g_format == log_format::json) {
    spdlog::default_logger()->set_formatter(
        make_formatter(R"({"time":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l","message":"%j"})"));
    g_access->set_formatter(make_formatter(R"({"time":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l",%v})"));
  } else {
    spdlog::default_logger()->set_formatter(make_formatter("%Y-%m-%dT%H:%M:%S.%eZ %l %v"));
    g_access->set_formatter(make_formatter("%Y-%m-%dT%H:%M:%S.%eZ %l %v"));
  }
}

}  // namespace

void init_logging(log_format fmt, std::string_view level) {
  if (!spdlog::thread_pool()) {
    spdlog::init_thread_pool(8192, 1);
  }
  // One sink per logger: a formatter belongs to the sink, and the two patterns differ.
  // Both write from spdlog's single worker thread, so lines never interleave.
  auto main_sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  auto access_sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  auto main_logger = std::make_shared<spdlog::async_logger>("switchyard", main_sink, spdlog::thread_pool(),
                                                            spdlog::async_overflow_policy::overrun_oldest);
  g_access = std::make_shared<spdlog::async_logger>("access", access_sink, spdlog::thread_pool(),
                                                    spdlog::async_overflow_policy::overrun_oldest);
  spdlog::set_default_logger(main_logger);
  auto lvl = spdlog::level::from_str(std::string(level));
  main_logger->set_level(lvl);
  g_access->set_level(lvl);
  spdlog::flush_every(std::chrono::seconds(1));
  g_format = fmt;
  apply_patterns();
}

void set_log_format(log_format fmt) {
  g_format = fmt;
  if (g_access) {
    apply_patterns();
  }
}

log_format current_log_format() { return g_format; }

void shutdown_logging() {
  if (auto l = spdlog::default_logger()) {
    l->flush();
  }
  if (g_access) {
    g_access->flush();
  }
  g_access.reset();
  spdlog::shutdown();
}

void json_escape_to(std::string& out, std::string_view s) {
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += fmt::format("\\u{:04x}", static_cast<unsigned>(static_cast<unsigned char>(c)));
        } else {
          out += c;
        }
    }
  }
}

void log_access(const access_record& r) {
  if (!g_access || !g_access->should_log(spdlog::level::info)) {
    return;
  }
  if (g_format == log_format::json) {
    std::string line = R"("message":"access","method":")";
    json_escape_to(line, r.method);
    line += R"(","path":")";
    json_escape_to(line, r.path);
    line += fmt::format(R"(","status":{},"model":")", r.status);
    json_escape_to(line, r.model);
    line += fmt::format(R"(","duration_ms":{:.3f},"key":")", r.duration_ms);
    json_escape_to(line, r.key_redacted);
    line += R"(","call_id":")";
    json_escape_to(line, r.call_id);
    line += "\"";  // the pattern closes the object
    g_access->info(line);
  } else {
    g_access->info("access {} {} {} model={} duration_ms={:.3f} key={} call_id={}", r.method, r.path, r.status,
                   r.model.empty() ? "-" : r.model, r.duration_ms, r.key_redacted.empty() ? "-" : r.key_redacted,
                   r.call_id);
  }
}

}  // namespace switchyard::core
