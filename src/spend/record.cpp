#include "switchyard/spend/record.hpp"

#include <nlohmann/json.hpp>

namespace switchyard::spend {

using json = nlohmann::json;

std::size_t spend_row::approx_bytes() const {
  return sizeof(spend_row) + row_id.size() + request_id.size() + call_type.size() + api_key.size() +
         key_alias.size() + user_id.size() + team_id.size() + organization_id.size() + end_user.size() +
         model.size() + model_group.size() + model_id.size() + provider.size() + api_base.size() + error_type.size() +
         requester_ip.size() + session_id.size() + tags_json.size() + metadata_json.size() + messages_json.size() +
         response_json.size();
}

namespace {

json raw_or(const std::string& text, json fallback) {
  if (text.empty()) {
    return fallback;
  }
  auto j = json::parse(text, nullptr, false);
  return j.is_discarded() ? fallback : j;
}

json to_json(const spend_row& r) {
  json j = {{"row_id", r.row_id},
            {"request_id", r.request_id},
            {"call_type", r.call_type},
            {"api_key", r.api_key},
            {"key_alias", r.key_alias},
            {"user_id", r.user_id},
            {"team_id", r.team_id},
            {"organization_id", r.organization_id},
            {"end_user", r.end_user},
            {"model", r.model},
            {"model_group", r.model_group},
            {"model_id", r.model_id},
            {"custom_llm_provider", r.provider},
            {"api_base", r.api_base},
            {"prompt_tokens", r.prompt_tokens},
            {"completion_tokens", r.completion_tokens},
            {"total_tokens", r.total_tokens},
            {"cached_tokens", r.cached_tokens},
            {"cache_creation_tokens", r.cache_creation_tokens},
            {"reasoning_tokens", r.reasoning_tokens},
            {"usage_estimated", r.usage_estimated},
            {"spend", r.spend},
            {"start_us", r.start_us},
            {"end_us", r.end_us},
            {"completion_start_us", r.completion_start_us},
            {"success", r.success},
            {"status_code", r.status_code},
            {"error_type", r.error_type},
            {"cache_hit", r.cache_hit},
            {"retries", r.retries},
            {"fallbacks", r.fallbacks},
            {"requester_ip_address", r.requester_ip},
            {"session_id", r.session_id},
            {"request_tags", raw_or(r.tags_json, json::array())},
            {"metadata", raw_or(r.metadata_json, json::object())}};
  if (!r.messages_json.empty()) {
    j["messages"] = raw_or(r.messages_json, nullptr);
  }
  if (!r.response_json.empty()) {
    j["response"] = raw_or(r.response_json, nullptr);
  }
  return j;
}

}  // namespace

void append_json(std::string& out, const spend_row& r) {
  out += to_json(r).dump(-1, ' ', false, json::error_handler_t::replace);
}

core::result<spend_row> row_from_json(std::string_view text) {
  auto j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return core::make_error(core::errc::bad_request, "spend row: not a JSON object");
  }
  try {
    spend_row r;
    auto str = [&](const char* k) { return j.value(k, std::string()); };
    r.row_id = str("row_id");
    if (r.row_id.empty()) {
      return core::make_error(core::errc::bad_request, "spend row: no row_id");
    }
    r.request_id = str("request_id");
    r.call_type = str("call_type");
    r.api_key = str("api_key");
    r.key_alias = str("key_alias");
    r.user_id = str("user_id");
    r.team_id = str("team_id");
    r.organization_id = str("organization_id");
    r.end_user = str("end_user");
    r.model = str("model");
    r.model_group = str("model_group");
    r.model_id = str("model_id");
    r.provider = str("custom_llm_provider");
    r.api_base = str("api_base");
    r.prompt_tokens = j.value("prompt_tokens", 0LL);
    r.completion_tokens = j.value("completion_tokens", 0LL);
    r.total_tokens = j.value("total_tokens", 0LL);
    r.cached_tokens = j.value("cached_tokens", 0LL);
    r.cache_creation_tokens = j.value("cache_creation_tokens", 0LL);
    r.reasoning_tokens = j.value("reasoning_tokens", 0LL);
    r.usage_estimated = j.value("usage_estimated", false);
    r.spend = j.value("spend", 0.0);
    r.start_us = j.value("start_us", std::int64_t{0});
    r.end_us = j.value("end_us", std::int64_t{0});
    r.completion_start_us = j.value("completion_start_us", std::int64_t{0});
    r.success = j.value("success", true);
    r.status_code = j.value("status_code", 0);
    r.error_type = str("error_type");
    r.cache_hit = j.value("cache_hit", false);
    r.retries = j.value("retries", 0);
    r.fallbacks = j.value("fallbacks", 0);
    r.requester_ip = str("requester_ip_address");
    r.session_id = str("session_id");
    r.tags_json = j.contains("request_tags") ? j["request_tags"].dump() : "[]";
    r.metadata_json = j.contains("metadata") ? j["metadata"].dump() : "{}";
    if (j.contains("messages") && !j["messages"].is_null()) {
      r.messages_json = j["messages"].dump();
    }
    if (j.contains("response") && !j["response"].is_null()) {
      r.response_json = j["response"].dump();
    }
    return r;
  } catch (const json::exception& e) {
    return core::make_error(core::errc::bad_request, std::string("spend row: ") + e.what());
  }
}

}  // namespace switchyard::spend
