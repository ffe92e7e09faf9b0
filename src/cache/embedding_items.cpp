#include "switchyard/cache/embedding_items.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <optional>
#include <utility>

namespace switchyard::cache {

using json = nlohmann::json;

namespace {

// A count is at most 10^18, as any provider count is read.
constexpr long long max_tokens = 1'000'000'000'000'000'000LL;

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

// The answer's data items by their index (0 to n-1); empty when malformed.
std::vector<const json*> items_by_index(const json& answer, std::size_t n) {
  if (!answer.is_object()) {
    return {};
  }
  auto data = answer.find("data");
  if (data == answer.end() || !data->is_array() || data->size() != n) {
    return {};
  }
  std::vector<const json*> out(n, nullptr);
  std::size_t position = 0;
  for (const auto& item : *data) {
    if (!item.is_object() || !item.contains("embedding")) {
      return {};
    }
    // An item without an index is at its position (as some providers answer).
    std::size_t at = position++;
    if (auto ix = item.find("index"); ix != item.end()) {
      if (!ix->is_number_unsigned()) {
        return {};
      }
      at = ix->get<std::size_t>();
    }
    if (at >= n || out[at] != nullptr) {
      return {};
    }
    out[at] = &item;
  }
  return out;
}

json embedding_item(std::size_t index, json embedding) {
  return {{"object", "embedding"}, {"index", index}, {"embedding", std::move(embedding)}};
}

// A cached item's value: {"embedding": <floats or base64>, "model": <the provider's model>},
// or, as older gateways stored it, the embedding alone (an array or a string, never an
// object). Discarded when it is neither.
struct cached_item {
  json embedding;
  std::string model;                        // empty when not stored
  std::optional<long long> prompt_tokens;  // the item's share of its miss's count
};

// `total` divided in proportion to `weights`: whole shares that add up to `total`, the
// remainder going to the largest fractions (the first, on a tie).
std::vector<long long> shares_of(long long total, const std::vector<long long>& weights) {
  std::vector<long long> out(weights.size(), 0);
  long double sum = 0;
  for (auto w : weights) {
    sum += static_cast<long double>(std::max(w, 0LL));
  }
  if (sum <= 0 || total <= 0) {
    return out;
  }
  std::vector<std::pair<long double, std::size_t>> fractions;
  long long given = 0;
  for (std::size_t i = 0; i < weights.size(); ++i) {
    if (weights[i] <= 0) {
      continue;
    }
    const long double exact = static_cast<long double>(total) * static_cast<long double>(weights[i]) / sum;
    out[i] = static_cast<long long>(exact);
    given += out[i];
    fractions.emplace_back(exact - static_cast<long double>(out[i]), i);
  }
  std::stable_sort(fractions.begin(), fractions.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  for (std::size_t k = 0; given < total && !fractions.empty(); k = (k + 1) % fractions.size()) {
    ++out[fractions[k].second];
    ++given;
  }
  return out;
}
std::optional<cached_item> read_cached(std::string_view value) {
  json v = json::parse(value, nullptr, false);
  if (v.is_discarded()) {
    return std::nullopt;
  }
  cached_item out;
  if (v.is_object()) {
    auto e = v.find("embedding");
    if (e == v.end()) {
      return std::nullopt;
    }
    if (auto m = v.find("model"); m != v.end() && m->is_string()) {
      out.model = m->get<std::string>();
    }
    if (auto t = v.find("prompt_tokens"); t != v.end() && t->is_number_integer() && t->get<long long>() >= 0) {
      out.prompt_tokens = t->get<long long>();
    }
    out.embedding = std::move(*e);
  } else {
    out.embedding = std::move(v);
  }
  return out;
}

}  // namespace

std::vector<std::string> embedding_values(std::string_view answer, std::size_t n,
                                          const std::vector<long long>& weights, std::optional<long long> count) {
  const json j = json::parse(answer, nullptr, false);
  const auto items = items_by_index(j, n);
  if (items.empty()) {
    return {};
  }
  // The model the provider named beside each item, so that an answer made wholly from the
  // cache names it too (as a miss does), not the group the client asked for.
  json model;
  if (auto m = j.find("model"); m != j.end() && m->is_string()) {
    model = *m;
  }
  std::vector<long long> shares;
  if (weights.size() == n) {
    if (count) {
      shares = shares_of(std::clamp(*count, 0LL, max_tokens), weights);
    } else if (auto u = j.find("usage"); u != j.end() && u->is_object()) {
      if (auto p = u->find("prompt_tokens"); p != u->end() && p->is_number_integer() && p->get<long long>() >= 0) {
        shares = shares_of(std::min(p->get<long long>(), max_tokens), weights);
      }
    }
  }
  std::vector<std::string> out;
  out.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    json v{{"embedding", items[i]->at("embedding")}};
    if (!model.is_null()) {
      v["model"] = model;
    }
    if (!shares.empty()) {
      v["prompt_tokens"] = shares[i];
    }
    out.push_back(dump(v));
  }
  return out;
}

core::result<std::string> merge_embedding_answer(std::string_view answer,
                                                 const std::vector<std::optional<std::string>>& cached,
                                                 const std::vector<long long>& estimates) {
  std::size_t sent = 0;
  for (const auto& c : cached) {
    sent += c ? 0 : 1;
  }
  json j = json::parse(answer, nullptr, false);
  const auto fresh = items_by_index(j, sent);
  if (!j.is_object() || (fresh.empty() && sent != 0)) {
    return core::make_error(core::errc::upstream_error,
                            "the provider's embeddings answer does not hold one embedding for each of the " +
                                std::to_string(sent) + " input(s) sent (the others were cached)");
  }
  json data = json::array();
  std::size_t next = 0;
  long long cached_tokens = 0;  // the cached items' counts, as a full hit counts them
  for (std::size_t i = 0; i < cached.size(); ++i) {
    if (cached[i]) {
      auto v = read_cached(*cached[i]);
      if (!v) {
        return core::make_error(core::errc::internal, "a cached embedding is not JSON");
      }
      const long long t = v->prompt_tokens ? *v->prompt_tokens : i < estimates.size() ? estimates[i] : 0;
      cached_tokens = std::min(cached_tokens + std::clamp(t, 0LL, max_tokens), max_tokens);
      data.push_back(embedding_item(i, std::move(v->embedding)));
    } else {
      data.push_back(embedding_item(i, fresh[next++]->at("embedding")));
    }
  }
  j["data"] = std::move(data);
  // The provider's count covers the items sent; the answer holds the cached ones too. (Its
  // cost is the provider's count alone: the call is priced from the provider's answer.)
  if (auto u = j.find("usage"); u != j.end() && u->is_object()) {
    if (auto p = u->find("prompt_tokens"); p != u->end() && p->is_number_integer() && p->get<long long>() >= 0) {
      *p = std::min(p->get<long long>(), max_tokens - cached_tokens) + cached_tokens;
      if (auto t = u->find("total_tokens"); t != u->end() && t->is_number_integer() && t->get<long long>() >= 0) {
        *t = std::min(t->get<long long>(), max_tokens - cached_tokens) + cached_tokens;
      }
    }
  }
  return dump(j);
}

std::optional<embedding_hit> embedding_hit_answer(const std::vector<std::string>& values, std::string_view model,
                                                  const std::vector<long long>& estimates) {
  json data = json::array();
  std::string named;  // the first item's stored model
  long long tokens = 0;
  for (std::size_t i = 0; i < values.size(); ++i) {
    auto v = read_cached(values[i]);
    if (!v) {
      return std::nullopt;
    }
    if (named.empty()) {
      named = std::move(v->model);
    }
    const long long t = v->prompt_tokens ? *v->prompt_tokens : i < estimates.size() ? estimates[i] : 0;
    tokens = std::min(tokens + std::clamp(t, 0LL, max_tokens), max_tokens);
    data.push_back(embedding_item(i, std::move(v->embedding)));
  }
  embedding_hit hit;
  hit.prompt_tokens = tokens;
  hit.body = dump(json{{"object", "list"},
                       {"data", std::move(data)},
                       {"model", named.empty() ? std::string(model) : named},
                       {"usage", {{"prompt_tokens", tokens}, {"total_tokens", tokens}}}});
  return hit;
}

}  // namespace switchyard::cache
