#include "switchyard/cache/embedding_items.hpp"

#include <nlohmann/json.hpp>

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

}  // namespace

std::vector<std::string> embedding_values(std::string_view answer, std::size_t n) {
  const json j = json::parse(answer, nullptr, false);
  const auto items = items_by_index(j, n);
  if (items.empty()) {
    return {};
  }
  std::vector<std::string> out;
  out.reserve(n);
  for (const json* item : items) {
    out.push_back(dump(item->at("embedding")));
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
      json v = json::parse(*cached[i], nullptr, false);
      if (v.is_discarded()) {
        return core::make_error(core::errc::internal, "a cached embedding is not JSON");
      }
      data.push_back(embedding_item(i, std::move(v)));
    } else {
      data.push_back(embedding_item(i, fresh[next++]->at("embedding")));
    }
  }
  j["data"] = std::move(data);
  return dump(j);
}

std::optional<std::string> embedding_hit_answer(const std::vector<std::string>& values, std::string_view model) {
  json data = json::array();
  for (std::size_t i = 0; i < values.size(); ++i) {
    json v = json::parse(values[i], nullptr, false);
    if (v.is_discarded()) {
      return std::nullopt;
    }
    data.push_back(embedding_item(i, std::move(v)));
  }
  return dump(json{{"object", "list"},
                   {"data", std::move(data)},
                   {"model", std::string(model)},
                   {"usage", {{"prompt_tokens", 0}, {"total_tokens", 0}}}});
}

}  // namespace switchyard::cache
