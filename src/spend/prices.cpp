#include "switchyard/spend/prices.hpp"
#include "switchyard/core/file.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace switchyard::spend {

using json = nlohmann::json;

namespace {

constexpr long long tier_threshold = 200'000;

std::optional<double> number_of(const json& o, const char* key) {
  auto it = o.find(key);
  if (it == o.end()) {
    return std::nullopt;
  }
  if (it->is_number()) {
    return it->get<double>();
  }
  if (it->is_string()) {  // LiteLLM configs often quote prices: "0.000001"
    const auto& s = it->get_ref<const std::string&>();
    char* end = nullptr;
    double v = std::strtod(s.c_str(), &end);
    if (end != s.c_str() && *end == '\0') {
      return v;
    }
  }
  return std::nullopt;
}

long long integer_of(const json& o, const char* key) {
  auto v = number_of(o, key);
  return v ? static_cast<long long>(*v) : 0;
}

price price_of(const json& o) {
  price p;
  p.input = number_of(o, "input_cost_per_token");
  p.output = number_of(o, "output_cost_per_token");
  p.cache_read = number_of(o, "cache_read_input_token_cost");
  p.cache_creation = number_of(o, "cache_creation_input_token_cost");
  p.output_reasoning = number_of(o, "output_cost_per_reasoning_token");
  p.input_above_200k = number_of(o, "input_cost_per_token_above_200k_tokens");
  p.output_above_200k = number_of(o, "output_cost_per_token_above_200k_tokens");
  p.cache_read_above_200k = number_of(o, "cache_read_input_token_cost_above_200k_tokens");
  p.cache_creation_above_200k = number_of(o, "cache_creation_input_token_cost_above_200k_tokens");
  p.input_per_second = number_of(o, "input_cost_per_second");
  p.output_per_second = number_of(o, "output_cost_per_second");
  p.max_input_tokens = integer_of(o, "max_input_tokens");
  p.max_output_tokens = integer_of(o, "max_output_tokens");
  p.max_tokens = integer_of(o, "max_tokens");
  if (auto it = o.find("mode"); it != o.end() && it->is_string()) {
    p.mode = it->get<std::string>();
  }
  if (auto it = o.find("litellm_provider"); it != o.end() && it->is_string()) {
    p.provider = it->get<std::string>();
  }
  for (auto it = o.begin(); it != o.end(); ++it) {
    if (it.value().is_boolean() && it.key().rfind("supports_", 0) == 0) {
      p.flags.emplace(it.key(), it.value().get<bool>());
    }
  }
  return p;
}

// The deployment's own price fields (litellm_params, then model_info) over `base`.
bool apply_overrides(price& p, const json& o) {
  if (!o.is_object()) {
    return false;
  }
  auto own = price_of(o);
  bool any = false;
  auto take = [&any](std::optional<double>& dst, const std::optional<double>& src) {
    if (src) {
      dst = src;
      any = true;
    }
  };
  take(p.input, own.input);
  take(p.output, own.output);
  take(p.cache_read, own.cache_read);
  take(p.cache_creation, own.cache_creation);
  take(p.output_reasoning, own.output_reasoning);
  take(p.input_per_second, own.input_per_second);
  take(p.output_per_second, own.output_per_second);
  return any;
}

std::string text_of(const json& o, const char* key) {
  if (!o.is_object()) {
    return {};
  }
  auto it = o.find(key);
  return it != o.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace

double cost_of(const price& p, const tokens& t, double duration_s) {
  const bool above = t.prompt > tier_threshold;
  auto rate = [above](const std::optional<double>& base, const std::optional<double>& tier) {
    return above && tier ? *tier : base.value_or(0.0);
  };
  const double input = rate(p.input, p.input_above_200k);
  const double output = rate(p.output, p.output_above_200k);
  const double cache_read = p.cache_read || p.cache_read_above_200k ? rate(p.cache_read, p.cache_read_above_200k) : input;
  const double cache_creation =
      p.cache_creation || p.cache_creation_above_200k ? rate(p.cache_creation, p.cache_creation_above_200k) : input;
  const long long cached = std::max(0LL, t.cached);
  const long long created = std::max(0LL, t.cache_creation);
  const long long text = std::max(0LL, t.prompt - cached - created);
  double cost = static_cast<double>(text) * input + static_cast<double>(cached) * cache_read +
                static_cast<double>(created) * cache_creation;
  if (p.output_reasoning && t.reasoning > 0) {
    const long long reasoning = std::min(t.reasoning, t.completion);
    cost += static_cast<double>(t.completion - reasoning) * output +
            static_cast<double>(reasoning) * *p.output_reasoning;
  } else {
    cost += static_cast<double>(t.completion) * output;
  }
  if (duration_s > 0) {
    cost += duration_s * (p.input_per_second.value_or(0.0) + p.output_per_second.value_or(0.0));
  }
  return cost;
}

bool bound_tokens(tokens& t) {
  bool changed = false;
  for (long long* n : {&t.prompt, &t.completion, &t.cached, &t.cache_creation, &t.reasoning}) {
    const long long held = std::clamp(*n, 0LL, max_billed_tokens);
    changed = changed || held != *n;
    *n = held;
  }
  return changed;
}

namespace {
std::atomic<std::uint64_t> usage_bounded{0};
}  // namespace

std::uint64_t usage_bounded_total() { return usage_bounded.load(std::memory_order_relaxed); }
void count_usage_bounded() { usage_bounded.fetch_add(1, std::memory_order_relaxed); }

core::result<price_table> price_table::parse(std::string_view json_text, std::string_view origin) {
  auto doc = json::parse(json_text, nullptr, false);
  if (doc.is_discarded()) {
    return core::make_error(core::errc::bad_request, std::string(origin) + ": not valid JSON");
  }
  if (!doc.is_object()) {
    return core::make_error(core::errc::bad_request,
                            std::string(origin) + ": expected a JSON object of model name -> prices");
  }
  price_table t;
  for (const auto& [name, entry] : doc.items()) {
    if (!entry.is_object() || name == "sample_spec") {
      continue;
    }
    t.entries_.insert_or_assign(name, price_of(entry));
  }
  return t;
}

core::result<price_table> price_table::load_blocking(const std::string& path) {
  auto read = core::read_file(path);
  if (!read) {
    return core::make_error(core::errc::bad_request, "cannot read the price table " + read.error);
  }
  return parse(*read.text, path);
}

void price_table::merge(const price_table& other) {
  for (const auto& [k, v] : other.entries_) {
    entries_.insert_or_assign(k, v);
  }
}

const price* price_table::find(std::string_view model) const {
  auto it = entries_.find(model);
  return it == entries_.end() ? nullptr : &it->second;
}

std::optional<price> price_table::for_deployment(const config::deployment& d, bool local) const {
  const price* base = entry_for(d, local);
  price p = base != nullptr ? *base : price{};
  // Both apply (litellm_params after model_info), so no short-circuit.
  const bool own_info = apply_overrides(p, d.model_info);
  const bool own_params = apply_overrides(p, d.litellm_params);
  const bool own = own_info || own_params;
  if (base == nullptr && !own) {
    return std::nullopt;
  }
  return p;
}

const price* price_table::entry_for(const config::deployment& d, bool local) const {
  const price* base = nullptr;
  if (auto bm = text_of(d.model_info, "base_model"); !bm.empty()) {
    base = find(bm);
    if (base == nullptr) {
      if (auto slash = bm.find('/'); slash != std::string::npos) {
        base = find(std::string_view(bm).substr(slash + 1));
      }
    }
  }
  if (base == nullptr && !local) {
    base = find(d.model);  // "<provider>/<model>" as written in litellm_params.model
    if (base == nullptr) {
      base = find(d.upstream_model);
    }
    if (base == nullptr && d.upstream_model.find('@') != std::string::npos) {
      // Vertex AI names Anthropic's models with '@' before the date
      // (claude-sonnet-4@20250514); Google bills them at Anthropic's prices, so the
      // table's claude-sonnet-4-20250514 serves.
      std::string dashed = d.upstream_model;
      dashed[dashed.find('@')] = '-';
      base = find(dashed);
    }
    if (auto slash = d.upstream_model.rfind('/'); base == nullptr && slash != std::string::npos) {
      // A route segment before the model (bedrock/converse/<id>) or an ARN whose last
      // part is the model or inference profile id.
      base = find(std::string_view(d.upstream_model).substr(slash + 1));
    }
  }
  return base;
}

std::string shipped_prices_path() {
  if (const char* dir = std::getenv("SWITCHYARD_PRICES_DIR"); dir != nullptr && *dir != '\0') {
    return std::string(dir) + "/model_prices.json";
  }
  std::error_code ec;
  if (std::filesystem::is_regular_file("config/model_prices.json", ec)) {
    return "config/model_prices.json";
  }
  return std::string(SWITCHYARD_SOURCE_CONFIG) + "/model_prices.json";
}

}  // namespace switchyard::spend
