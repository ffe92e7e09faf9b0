#include "switchyard/metrics/registry.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace switchyard::metrics {

namespace {

constexpr std::string_view overflow_value = "__overflow__";
constexpr char key_separator = '\x1f';

bool valid_name(std::string_view n) {
  if (n.empty() || (n[0] >= '0' && n[0] <= '9')) {
    return false;
  }
  return std::all_of(n.begin(), n.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == ':';
  });
}

void append_number(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "NaN";
  } else if (std::isinf(v)) {
    out += v > 0 ? "+Inf" : "-Inf";
  } else {
    fmt::format_to(std::back_inserter(out), "{}", v);
  }
}

// Label values: backslash, double quote and newline escaped (both formats).
void append_label_value(std::string& out, std::string_view v) {
  for (char c : v) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '"': out += "\\\""; break;
      case '\n': out += "\\n"; break;
      default: out += c;
    }
  }
}

// HELP text: backslash and newline escaped (OpenMetrics also escapes double quotes).
void append_help(std::string& out, std::string_view v, format f) {
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && f == format::openmetrics) {
      out += "\\\"";
    } else {
      out += c;
    }
  }
}

const char* type_name(metric_type t) {
  switch (t) {
    case metric_type::counter: return "counter";
    case metric_type::gauge: return "gauge";
    case metric_type::histogram: return "histogram";
  }
  return "untyped";
}

}  // namespace

void series::observe(double v) noexcept {
  if (bounds_ == nullptr || std::isnan(v)) {
    return;
  }
  auto it = std::lower_bound(bounds_->begin(), bounds_->end(), v);
  buckets_[static_cast<std::size_t>(it - bounds_->begin())] += 1;
  value_ += v;
  count_ += 1;
}

family::family(registry& owner, std::string name, std::string help, metric_type type,
               std::vector<std::string> label_names, std::vector<double> bounds, std::size_t max_series)
    : owner_(owner),
      name_(std::move(name)),
      help_(std::move(help)),
      type_(type),
      label_names_(std::move(label_names)),
      bounds_(std::move(bounds)),
      max_series_(std::max<std::size_t>(1, max_series)) {
  if (!valid_name(name_)) {
    throw std::invalid_argument("metric name '" + name_ + "' is not a Prometheus name");
  }
  for (const auto& l : label_names_) {
    if (!valid_name(l) || l.find(':') != std::string::npos || l == "le" || l.starts_with("__")) {
      throw std::invalid_argument("label name '" + l + "' of " + name_ + " is not allowed");
    }
  }
  if (!std::is_sorted(bounds_.begin(), bounds_.end()) ||
      std::adjacent_find(bounds_.begin(), bounds_.end()) != bounds_.end()) {
    throw std::invalid_argument("bucket bounds of " + name_ + " must be strictly ascending");
  }
  if (!bounds_.empty() && std::isinf(bounds_.back())) {
    bounds_.pop_back();  // +Inf is always the last bucket
  }
}

void family::make_key(std::span<const std::string_view> values) {
  key_.clear();
  for (auto v : values) {
    key_.append(v);
    key_.push_back(key_separator);
  }
}

series* family::find(std::span<const std::string_view> values) {
  if (values.size() != label_names_.size()) {
    return nullptr;
  }
  make_key(values);
  auto it = index_.find(std::string_view(key_));
  return it == index_.end() ? nullptr : it->second;
}

series& family::with(std::span<const std::string_view> values) {
  if (values.size() == label_names_.size()) {
    make_key(values);
    if (auto it = index_.find(std::string_view(key_)); it != index_.end()) {
      return *it->second;
    }
    if (series_.size() - (overflow_ != nullptr ? 1 : 0) < max_series_) {
      return create(values);
    }
  }
  // Past the cap (or a caller bug: the wrong number of values): folded into one series.
  if (overflow_counter_ == nullptr && owner_.overflow_ != nullptr && owner_.overflow_ != this) {
    overflow_counter_ = &owner_.overflow_->with({std::string_view(name_)});
  }
  if (overflow_counter_ != nullptr) {
    overflow_counter_->inc();
  }
  if (overflow_ == nullptr) {
    std::vector<std::string_view> all(label_names_.size(), overflow_value);
    overflow_ = &create(all);
    overflow_->folded_ = true;
  }
  return *overflow_;
}

series& family::create(std::span<const std::string_view> values) {
  auto& s = series_.emplace_back();
  s.labels_.assign(values.begin(), values.end());
  if (type_ == metric_type::histogram) {
    s.bounds_ = &bounds_;
    s.buckets_.assign(bounds_.size() + 1, 0);
  }
  make_key(values);
  index_.emplace(key_, &s);
  return s;
}

void family::clear() {
  series_.clear();
  index_.clear();
  overflow_ = nullptr;
}

void family::render_series(format f, const series& s, std::string& out) const {
  auto labels = [&](std::string_view le) {
    if (label_names_.empty() && le.empty()) {
      return;
    }
    out += '{';
    bool first = true;
    for (std::size_t i = 0; i < label_names_.size(); ++i) {
      out += first ? "" : ",";
      first = false;
      out += label_names_[i];
      out += "=\"";
      append_label_value(out, s.labels_[i]);
      out += '"';
    }
    if (!le.empty()) {
      out += first ? "" : ",";
      out += "le=\"";
      out += le;
      out += '"';
    }
    out += '}';
  };
  switch (type_) {
    case metric_type::counter:
      out += name_;
      out += "_total";
      labels({});
      out += ' ';
      append_number(out, s.value_);
      out += '\n';
      break;
    case metric_type::gauge:
      out += name_;
      labels({});
      out += ' ';
      append_number(out, s.value_);
      out += '\n';
      break;
    case metric_type::histogram: {
      std::uint64_t cumulative = 0;
      std::string le;
      for (std::size_t i = 0; i <= bounds_.size(); ++i) {
        cumulative += s.buckets_[i];
        le.clear();
        if (i < bounds_.size()) {
          append_number(le, bounds_[i]);
        } else {
          le = "+Inf";
        }
        out += name_;
        out += "_bucket";
        labels(le);
        fmt::format_to(std::back_inserter(out), " {}\n", cumulative);
      }
      out += name_;
      out += "_sum";
      labels({});
      out += ' ';
      append_number(out, s.value_);
      out += '\n';
      out += name_;
      out += "_count";
      labels({});
      fmt::format_to(std::back_inserter(out), " {}\n", s.count_);
      break;
    }
  }
  (void)f;
}

void family::render(format f, std::size_t from, std::size_t to, std::string& out) const {
  if (from == 0) {
    // The text format names a counter's family with its _total suffix (as the official
    // clients print it); OpenMetrics names the family without it.
    const bool suffix = type_ == metric_type::counter && f == format::text;
    out += "# HELP ";
    out += name_;
    out += suffix ? "_total " : " ";
    append_help(out, help_, f);
    out += "\n# TYPE ";
    out += name_;
    out += suffix ? "_total " : " ";
    out += type_name(type_);
    out += '\n';
  }
  to = std::min(to, series_.size());
  for (std::size_t i = from; i < to; ++i) {
    render_series(f, series_[i], out);
  }
}

registry::registry(std::size_t max_series) : default_max_series_(std::max<std::size_t>(1, max_series)) {
  overflow_ = &add("switchyard_metrics_overflow",
                   "Samples folded into a metric's __overflow__ series because it reached its cap of label sets",
                   metric_type::counter, {"metric"}, {}, 100000);
}

family& registry::add(std::string name, std::string help, metric_type t, std::vector<std::string> labels,
                      std::vector<double> bounds, std::size_t max_series) {
  if (find(name) != nullptr) {
    throw std::invalid_argument("metric '" + name + "' registered twice");
  }
  families_.push_back(std::make_unique<family>(*this, std::move(name), std::move(help), t, std::move(labels),
                                               std::move(bounds), max_series == 0 ? default_max_series_ : max_series));
  return *families_.back();
}

family& registry::counter(std::string name, std::string help, std::vector<std::string> labels, std::size_t max_series) {
  return add(std::move(name), std::move(help), metric_type::counter, std::move(labels), {}, max_series);
}

family& registry::gauge(std::string name, std::string help, std::vector<std::string> labels, std::size_t max_series) {
  return add(std::move(name), std::move(help), metric_type::gauge, std::move(labels), {}, max_series);
}

family& registry::histogram(std::string name, std::string help, std::vector<std::string> labels,
                            std::vector<double> bounds, std::size_t max_series) {
  return add(std::move(name), std::move(help), metric_type::histogram, std::move(labels), std::move(bounds),
             max_series);
}

family* registry::find(std::string_view name) const {
  for (const auto& f : families_) {
    if (f->name() == name) {
      return f.get();
    }
  }
  return nullptr;
}

std::size_t registry::series_count() const {
  std::size_t n = 0;
  for (const auto& f : families_) {
    n += f->size();
  }
  return n;
}

void registry::run_hooks() {
  for (auto& h : hooks_) {
    h();
  }
}

void registry::end_window() {
  for (auto& h : window_hooks_) {
    h();
  }
}

std::string registry::render(format f) {
  run_hooks();
  end_window();
  std::string out;
  for (const auto& fam : families_) {
    fam->render(f, 0, fam->size(), out);
  }
  if (f == format::openmetrics) {
    out += "# EOF\n";
  }
  return out;
}

net::awaitable<std::string> registry::render_async(format f, std::size_t chunk) {
  chunk = std::max<std::size_t>(1, chunk);
  run_hooks();
  end_window();  // the hooks copied the window's values into their gauges
  auto ex = co_await net::this_coro::executor;
  std::string out;
  std::size_t since_yield = 0;
  // Indexes, not iterators: families and series may be added while this coroutine waits.
  for (std::size_t fi = 0; fi < families_.size(); ++fi) {
    std::size_t from = 0;
    do {
      const family& fam = *families_[fi];
      std::size_t to = std::min(fam.size(), from + (chunk - since_yield));
      fam.render(f, from, to, out);
      since_yield += to - from;
      from = to;
      if (since_yield >= chunk) {
        since_yield = 0;
        co_await net::post(ex, net::use_awaitable);
      }
    } while (from < families_[fi]->size());
  }
  if (f == format::openmetrics) {
    out += "# EOF\n";
  }
  co_return out;
}

// Snapshots: one line per family, then one per series, fields separated by tabs.
//   F <c|g|h> <s|x|n|m> <name> <label names, comma-separated> <bounds, comma-separated> <help>
//   S <value> <count> <buckets, comma-separated> <label value>...
// Strings escape backslash, tab and newline; numbers are written in their shortest exact
// form, so a snapshot read back gives the same doubles.
namespace {

void put_escaped(std::string& out, std::string_view v) {
  for (char c : v) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '\t': out += "\\t"; break;
      case '\n': out += "\\n"; break;
      default: out += c;
    }
  }
}

bool get_escaped(std::string_view v, std::string& out) {
  out.clear();
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (v[i] != '\\') {
      out += v[i];
      continue;
    }
    if (++i == v.size()) {
      return false;
    }
    switch (v[i]) {
      case '\\': out += '\\'; break;
      case 't': out += '\t'; break;
      case 'n': out += '\n'; break;
      default: return false;
    }
  }
  return true;
}

template <class T>
bool get_number(std::string_view v, T& out) {
  const auto* end = v.data() + v.size();
  auto [p, ec] = std::from_chars(v.data(), end, out);
  return ec == std::errc() && p == end;
}

// Splits on `sep`; an empty text gives no parts.
void split(std::string_view v, char sep, std::vector<std::string_view>& parts) {
  parts.clear();
  if (v.empty()) {
    return;
  }
  for (;;) {
    const auto at = v.find(sep);
    parts.push_back(v.substr(0, at));
    if (at == std::string_view::npos) {
      return;
    }
    v.remove_prefix(at + 1);
  }
}

char type_code(metric_type t) {
  return t == metric_type::counter ? 'c' : t == metric_type::gauge ? 'g' : 'h';
}

char merge_code(merge_rule r) {
  switch (r) {
    case merge_rule::sum: return 's';
    case merge_rule::max: return 'x';
    case merge_rule::min: return 'n';
    case merge_rule::mean: return 'm';
  }
  return 's';
}

}  // namespace

namespace {

void snapshot_family(const family& fam, std::string& out) {
  out += "F\t";
  out += type_code(fam.type());
  out += '\t';
  out += merge_code(fam.merge());
  out += '\t';
  out += fam.name();
  out += '\t';
  for (std::size_t i = 0; i < fam.label_names().size(); ++i) {
    out += i == 0 ? "" : ",";
    out += fam.label_names()[i];
  }
  out += '\t';
  for (std::size_t i = 0; i < fam.bounds().size(); ++i) {
    out += i == 0 ? "" : ",";
    fmt::format_to(std::back_inserter(out), "{}", fam.bounds()[i]);
  }
  out += '\t';
  put_escaped(out, fam.help());
  out += '\n';
}

void snapshot_series(const series& s, std::string& out) {
  fmt::format_to(std::back_inserter(out), "S\t{}\t{}\t", s.value(), s.count());
  for (std::size_t b = 0; b < s.buckets().size(); ++b) {
    out += b == 0 ? "" : ",";
    fmt::format_to(std::back_inserter(out), "{}", s.buckets()[b]);
  }
  for (const auto& l : s.labels()) {
    out += '\t';
    put_escaped(out, l);
  }
  out += '\n';
}

}  // namespace

std::string registry::snapshot() {
  run_hooks();
  std::string out;
  for (const auto& fam : families_) {
    snapshot_family(*fam, out);
    for (std::size_t i = 0; i < fam->size(); ++i) {
      snapshot_series(fam->at(i), out);
    }
  }
  return out;
}

net::awaitable<std::string> registry::snapshot_async(std::size_t chunk) {
  chunk = std::max<std::size_t>(1, chunk);
  run_hooks();
  auto ex = co_await net::this_coro::executor;
  std::string out;
  std::size_t since_yield = 0;
  // Indexes: families and series may be added while this coroutine waits (never removed
  // but by family::clear(), after a config change; the size is read again each time).
  for (std::size_t fi = 0; fi < families_.size(); ++fi) {
    snapshot_family(*families_[fi], out);
    for (std::size_t i = 0; i < families_[fi]->size(); ++i) {
      snapshot_series(families_[fi]->at(i), out);
      if (++since_yield >= chunk) {
        since_yield = 0;
        co_await net::post(ex, net::use_awaitable);
      }
    }
  }
  co_return out;
}

bool registry::absorb(std::string_view snap, bool counters_only) {
  absorb_state state;
  return absorb_some(snap, state, counters_only, std::numeric_limits<std::size_t>::max()) && snap.empty();
}

bool registry::absorb_some(std::string_view& snap, absorb_state& state, bool counters_only,
                           std::size_t max_series) {
  family*& fam = state.fam;
  bool& in_family = state.in_family;
  bool& skip = state.skip;
  std::size_t series_read = 0;
  std::vector<std::string_view> fields;
  std::vector<std::string_view> parts;
  std::vector<std::string> values;
  std::vector<std::string_view> views;
  std::vector<std::uint64_t> buckets;
  std::string text;
  while (!snap.empty() && series_read < max_series) {
    const auto nl = snap.find('\n');
    if (nl == std::string_view::npos) {
      return false;
    }
    const std::string_view line = snap.substr(0, nl);
    snap.remove_prefix(nl + 1);
    split(line, '\t', fields);
    if (fields.size() == 7 && fields[0] == "F") {
      if (fields[1].size() != 1 || fields[2].size() != 1) {
        return false;
      }
      const char t = fields[1][0];
      const char m = fields[2][0];
      if (std::string_view("cgh").find(t) == std::string_view::npos ||
          std::string_view("sxnm").find(m) == std::string_view::npos) {
        return false;
      }
      const metric_type type = t == 'c' ? metric_type::counter : t == 'g' ? metric_type::gauge : metric_type::histogram;
      std::vector<std::string> labels;
      split(fields[4], ',', parts);
      labels.assign(parts.begin(), parts.end());
      std::vector<double> bounds;
      split(fields[5], ',', parts);
      for (auto p : parts) {
        double b = 0;
        if (!get_number(p, b)) {
          return false;
        }
        bounds.push_back(b);
      }
      if (!get_escaped(fields[6], text)) {
        return false;
      }
      in_family = true;
      if (counters_only && type == metric_type::gauge) {
        skip = true;  // not even the family: nothing of it is carried
        continue;
      }
      fam = find(fields[3]);
      if (fam == nullptr) {
        try {
          fam = &add(std::string(fields[3]), text, type, std::move(labels), std::move(bounds),
                     std::numeric_limits<std::size_t>::max() / 2);
        } catch (const std::invalid_argument&) {
          return false;  // not a name or labels this registry would have made
        }
        fam->merge_ = m == 's' ? merge_rule::sum : m == 'x' ? merge_rule::max : m == 'n' ? merge_rule::min : merge_rule::mean;
        skip = false;
      } else {
        skip = fam->type() != type || fam->label_names() != labels || fam->bounds() != bounds;
      }
      continue;
    }
    if (fields.size() < 4 || fields[0] != "S" || !in_family) {
      return false;
    }
    ++series_read;
    double value = 0;
    std::uint64_t count = 0;
    if (!get_number(fields[1], value) || !get_number(fields[2], count)) {
      return false;
    }
    split(fields[3], ',', parts);
    buckets.clear();
    for (auto p : parts) {
      std::uint64_t b = 0;
      if (!get_number(p, b)) {
        return false;
      }
      buckets.push_back(b);
    }
    if (skip) {
      continue;
    }
    if (fields.size() - 4 != fam->label_names().size() ||
        buckets.size() != (fam->type() == metric_type::histogram ? fam->bounds().size() + 1 : 0)) {
      return false;
    }
    values.resize(fields.size() - 4);
    views.clear();
    for (std::size_t i = 4; i < fields.size(); ++i) {
      if (!get_escaped(fields[i], values[i - 4])) {
        return false;
      }
    }
    views.assign(values.begin(), values.end());
    series& s = fam->with(views);
    switch (fam->type()) {
      case metric_type::counter:
        s.value_ += value;
        break;
      case metric_type::histogram:
        s.value_ += value;
        s.count_ += count;
        for (std::size_t i = 0; i < buckets.size(); ++i) {
          s.buckets_[i] += buckets[i];
        }
        break;
      case metric_type::gauge:
        // A gauge's count_ (unused otherwise) counts the values combined so far.
        switch (fam->merge()) {
          case merge_rule::sum:
          case merge_rule::mean: s.value_ = s.count_ == 0 ? value : s.value_ + value; break;
          case merge_rule::max: s.value_ = s.count_ == 0 ? value : std::max(s.value_, value); break;
          case merge_rule::min: s.value_ = s.count_ == 0 ? value : std::min(s.value_, value); break;
        }
        s.count_ += 1;
        break;
    }
  }
  return true;
}

void registry::finish_absorb() {
  for (auto& fam : families_) {
    if (fam->type() != metric_type::gauge) {
      continue;
    }
    for (auto& s : fam->series_) {
      if (fam->merge() == merge_rule::mean && s.count_ > 0) {
        s.value_ /= static_cast<double>(s.count_);
      }
      s.count_ = 0;
    }
  }
}

const char* content_type(format f) {
  return f == format::openmetrics ? "application/openmetrics-text; version=1.0.0; charset=utf-8"
                                  : "text/plain; version=0.0.4; charset=utf-8";
}

format format_for_accept(std::string_view accept) {
  return accept.find("application/openmetrics-text") != std::string_view::npos ? format::openmetrics : format::text;
}

}  // namespace switchyard::metrics
