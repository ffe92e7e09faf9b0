#include "switchyard/cache/embedding_items.hpp"

#include <nlohmann/json.hpp>

#include <optional>

namespace switchyard::cache {

using json = nlohmann::json;

namespace {

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
  std::string model;  // empty when not stored
};
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
    out.embedding = std::move(*e);
  } else {
    out.embedding = std::move(v);
  }
  return out;
}

}  // namespace

std::vector<std::string> embedding_values(std::string_view answer, std::size_t n) {
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
  std::vector<std::string> out;
  out.reserve(n);
  for (const json* item : items) {
    json v{{"embedding", item->at("embedding")}};
    if (!model.is_null()) {
      v["model"] = model;
    }
    out.push_back(dump(v));
  }
  return out;
}

core::result<std::string> merge_embedding_answer(std::string_view answer,
                                                 const std::vector<std::optional<std::string>>& cached) {
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
  for (std::size_t i = 0; i < cached.size(); ++i) {
    if (cached[i]) {
      auto v = read_cached(*cached[i]);
      if (!v) {
        return core::make_error(core::errc::internal, "a cached embedding is not JSON");
      }
      data.push_back(embedding_item(i, std::move(v->embedding)));
    } else {
      data.push_back(embedding_item(i, fresh[next++]->at("embedding")));
    }
  }
  j["data"] = std::move(data);
  return dump(j);
}

std::optional<std::string> embedding_hit_answer(const std::vector<std::string>& values, std::string_view model) {
  json data = json::array();
  std::string named;  // the first item's stored model
  for (std::size_t i = 0; i < values.size(); ++i) {
    auto v = read_cached(values[i]);
    if (!v) {
      return std::nullopt;
    }
    if (named.empty()) {
      named = std::move(v->model);
    }
    data.push_back(embedding_item(i, std::move(v->embedding)));
  }
  return dump(json{{"object", "list"},
                   {"data", std::move(data)},
                   {"model", named.empty() ? std::string(model) : named},
                   {"usage", {{"prompt_tokens", 0}, {"total_tokens", 0}}}});
}

}  // namespace switchyard::cache
