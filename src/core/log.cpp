#include "switchyard/core/log.hpp"

#include "switchyard/core/utf8.hpp"

#include <fmt/format.h>
#include <spdlog/async.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <climits>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <ctime>
#include <memory>
#include <mutex>
#include <thread>

namespace switchyard::core {

namespace {

log_format g_format = log_format::text;
std::shared_ptr<spdlog::logger> g_access;  // level and (for tests) the logger's presence
// log_notice's lines: the main logger's sink (and so its format) at info whatever the
// level. One thread writes both loggers' queue, so their lines keep their order.
std::shared_ptr<spdlog::logger> g_notice;

// Access lines are the one log written per request, so they bypass spdlog's async
// queue, which wakes its worker thread (futex + context switch) for every message:
// measured at ~20% of the gateway's CPU under load (the bench in bench/). The loop thread formats
// the line and appends it to a buffer under an uncontended mutex (~50 ns); a writer
// thread wakes every 50 ms (or when 64 KB are pending) and writes everything to
// stderr with one write(). The loop never waits on stderr: past 8 MB pending (stderr
// blocked) lines are dropped and counted, and the count is logged once it drains.
class access_writer {
 public:
  access_writer() : thread_([this] { run(); }) {}
  ~access_writer() { stop(); }
  access_writer(const access_writer&) = delete;
  access_writer& operator=(const access_writer&) = delete;

  void append(std::string_view line) {
    std::lock_guard<std::mutex> lk(mu_);
    if (pending_.size() + line.size() + 1 > max_pending) {
      ++dropped_;
      return;
    }
    pending_.append(line.data(), line.size());
    pending_ += '\n';
    if (pending_.size() >= wake_bytes && !wake_) {
      wake_ = true;
      cv_.notify_one();
    }
  }

  void flush() {
    std::unique_lock<std::mutex> lk(mu_);
    write_out(lk);
  }

  void stop() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      if (stop_) {
        return;
      }
      stop_ = true;
      cv_.notify_one();
    }
    thread_.join();
  }

 private:
  static constexpr std::size_t wake_bytes = 64 * 1024;
  static constexpr std::size_t max_pending = 8 * 1024 * 1024;

  void run() {
    std::unique_lock<std::mutex> lk(mu_);
    while (!stop_) {
      cv_.wait_for(lk, std::chrono::milliseconds(50), [this] { return stop_ || wake_; });
      wake_ = false;
      write_out(lk);
    }
    write_out(lk);
  }

  // Called with the lock held; writes without it.
  void write_out(std::unique_lock<std::mutex>& lk) {
    if (pending_.empty() && dropped_ == 0) {
      return;
    }
    std::string out;
    out.swap(pending_);
    pending_.reserve(out.capacity() < wake_bytes ? wake_bytes : out.capacity());
    const std::size_t dropped = dropped_;
    dropped_ = 0;
    lk.unlock();
    if (dropped > 0) {
      out += fmt::format("access log: {} line(s) dropped while stderr was blocked\n", dropped);
    }
    // Whole lines, at most PIPE_BUF bytes per write(): such writes to a pipe are atomic,
    // so spdlog's own lines on the same stderr never land inside an access line.
    std::string_view all(out);
    while (!all.empty()) {
      std::size_t take = all.size();
      if (take > PIPE_BUF) {
        auto nl = all.rfind('\n', PIPE_BUF - 1);
        take = nl == std::string_view::npos ? PIPE_BUF : nl + 1;
      }
      write_all(all.substr(0, take));
      all.remove_prefix(take);
    }
    lk.lock();
  }

  static void write_all(std::string_view rest) {
    while (!rest.empty()) {
      ssize_t n = ::write(STDERR_FILENO, rest.data(), rest.size());
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n <= 0) {
        break;  // stderr closed: nothing else to do with the lines
      }
      rest.remove_prefix(static_cast<std::size_t>(n));
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::string pending_;
  std::size_t dropped_ = 0;
  bool wake_ = false;
  bool stop_ = false;
  std::thread thread_;
};

std::unique_ptr<access_writer> g_access_writer;

// "2026-11-23T12:00:00.123Z": the date part is formatted once per second.
void append_timestamp(std::string& out) {
  thread_local std::time_t cached_sec = -1;
  thread_local char cached[32];
  const auto now = std::chrono::system_clock::now();
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  const std::time_t sec = static_cast<std::time_t>(ms / 1000);
  if (sec != cached_sec) {
    std::tm tm{};
    gmtime_r(&sec, &tm);
    std::strftime(cached, sizeof cached, "%Y-%m-%dT%H:%M:%S", &tm);
    cached_sec = sec;
  }
  out += cached;
  const auto milli = static_cast<int>(ms % 1000);
  out += '.';
  out += static_cast<char>('0' + milli / 100);
  out += static_cast<char>('0' + (milli / 10) % 10);
  out += static_cast<char>('0' + milli % 10);
  out += 'Z';
}

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

// %k: the message payload with control characters written as escapes (text lines). A
// message carries outside words (an identity provider's error_description, a provider's
// or Postgres' error text); a line break among them would start a line of its own that a
// reader, or a log shipper, takes for one the gateway wrote.
class text_payload_flag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&, spdlog::memory_buf_t& dest) override {
    const char* p = msg.payload.data();
    const char* const end = p + msg.payload.size();
    const char* run = p;
    for (; p != end; ++p) {
      const auto c = static_cast<unsigned char>(*p);
      if (c >= 0x20 && c != 0x7f) {
        continue;
      }
      if (c == '\t') {
        continue;
      }
      dest.append(run, p);
      char esc[4] = {'\\', 'x', "0123456789abcdef"[c >> 4], "0123456789abcdef"[c & 15]};
      if (c == '\n' || c == '\r') {
        esc[1] = c == '\n' ? 'n' : 'r';
        dest.append(esc, esc + 2);
      } else {
        dest.append(esc, esc + 4);
      }
      run = p + 1;
    }
    dest.append(run, end);
  }
  std::unique_ptr<custom_flag_formatter> clone() const override { return std::make_unique<text_payload_flag>(); }
};

std::unique_ptr<spdlog::formatter> make_formatter(const std::string& pattern) {
  auto f = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc);
  f->add_flag<json_payload_flag>('j').add_flag<text_payload_flag>('k').set_pattern(pattern);
  return f;
}

void apply_patterns() {
  if (g_format == log_format::json) {
    spdlog::default_logger()->set_formatter(
        make_formatter(R"({"time":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l","message":"%j"})"));
    g_access->set_formatter(make_formatter(R"({"time":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l",%v})"));
  } else {
    spdlog::default_logger()->set_formatter(make_formatter("%Y-%m-%dT%H:%M:%S.%eZ %l %k"));
    g_access->set_formatter(make_formatter("%Y-%m-%dT%H:%M:%S.%eZ %l %v"));
  }
}


// A request path with the virtual keys it names (`/key/sk-.../regenerate`) cut to their
// last four characters, as key_redacted shows them: access logs never hold a usable key.
bool is_key_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

std::string_view redact_keys(std::string_view path, std::string& scratch) {
  auto at = path.find("sk-");
  if (at == std::string_view::npos) {
    return path;
  }
  scratch.clear();
  std::size_t from = 0;
  while (at != std::string_view::npos) {
    const bool starts_token = at == 0 || !is_key_char(path[at - 1]);
    std::size_t end = at + 3;
    while (end < path.size() && is_key_char(path[end])) {
      ++end;
    }
    if (starts_token && end - at > 7) {
      scratch.append(path.substr(from, at - from));
      scratch += "sk-...";
      scratch.append(path.substr(end - 4, 4));
      from = end;
    }
    at = path.find("sk-", end);
  }
  scratch.append(path.substr(from));
  return scratch;
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
  g_notice = std::make_shared<spdlog::async_logger>("notice", main_sink, spdlog::thread_pool(),
                                                    spdlog::async_overflow_policy::overrun_oldest);
  g_notice->set_level(spdlog::level::info);
  auto lvl = spdlog::level::from_str(std::string(level));
  main_logger->set_level(lvl);
  // Access lines are written at any level (as uvicorn's are whatever LITELLM_LOG says).
  g_access->set_level(std::min(lvl, spdlog::level::info));
  spdlog::flush_every(std::chrono::seconds(1));
  if (!g_access_writer) {
    g_access_writer = std::make_unique<access_writer>();
  }
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
  g_notice.reset();
  if (g_access_writer) {
    g_access_writer->stop();  // writes what is pending
    g_access_writer.reset();
  }
  spdlog::shutdown();
}

void json_escape_to(std::string& out, std::string_view s) { append_json_escaped(out, s); }

std::string_view redacted_path(std::string_view path, std::string& scratch) { return redact_keys(path, scratch); }

// `ms` with three decimals, as "%.3f" writes it, through integer microseconds: the
// floating-point to_chars cost a tenth of the access line.
void append_millis(std::string& out, double ms) {
  char num[32];
  if (!(ms >= 0 && ms < 1e12)) {  // never for a duration; NaN included
    out.append(num, static_cast<std::size_t>(std::to_chars(num, num + sizeof num, ms, std::chars_format::fixed, 3).ptr -
                                             num));
    return;
  }
  const auto us = static_cast<std::uint64_t>(std::llround(ms * 1000.0));
  out.append(num, static_cast<std::size_t>(std::to_chars(num, num + sizeof num, us / 1000).ptr - num));
  const auto frac = static_cast<unsigned>(us % 1000);
  const char digits[4] = {'.', static_cast<char>('0' + frac / 100), static_cast<char>('0' + frac / 10 % 10),
                          static_cast<char>('0' + frac % 10)};
  out.append(digits, 4);
}

void log_access(const access_record& r) {
  using namespace std::string_view_literals;  // line += "..."sv: the length known, no strlen
  if (!g_access || !g_access_writer || !g_access->should_log(spdlog::level::info)) {
    return;
  }
  thread_local std::string line;
  thread_local std::string path_scratch;
  line.clear();
  const std::string_view path = redact_keys(r.path, path_scratch);
  if (g_format == log_format::json) {
    line += R"({"time":")"sv;
    append_timestamp(line);
    line += R"(","level":"info","message":"access","method":")"sv;
    json_escape_to(line, r.method);
    line += R"(","path":")"sv;
    json_escape_to(line, path);
    fmt::format_to(std::back_inserter(line), R"(","status":{},"model":")", r.status);
    json_escape_to(line, r.model);
    line += R"(","duration_ms":)"sv;
    append_millis(line, r.duration_ms);
    line += R"(,"key":")"sv;
    json_escape_to(line, r.key_redacted);
    line += R"(","call_id":")"sv;
    json_escape_to(line, r.call_id);
    line += "\"}";
  } else {
    // Plain appends (fmt's argument handling cost ~3% of a request's instructions).
    char num[32];
    append_timestamp(line);
    line += " info access "sv;
    line += r.method;
    line += ' ';
    line += path;
    line += ' ';
    line.append(num, static_cast<std::size_t>(std::to_chars(num, num + sizeof num, r.status).ptr - num));
    line += " model="sv;
    line += r.model.empty() ? std::string_view("-") : r.model;
    line += " duration_ms="sv;
    append_millis(line, r.duration_ms);
    line += " key="sv;
    line += r.key_redacted.empty() ? std::string_view("-") : r.key_redacted;
    line += " call_id="sv;
    line += r.call_id;
  }
  g_access_writer->append(line);
}

void log_notice(std::string_view message) {
  if (g_notice) {
    g_notice->info("{}", message);
  } else {
    spdlog::info("{}", message);
  }
}

}  // namespace switchyard::core
