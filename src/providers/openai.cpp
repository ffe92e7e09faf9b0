#include "switchyard/providers/openai.hpp"

#include "switchyard/core/json_get.hpp"

#include <nlohmann/json.hpp>

#include <openssl/evp.h>

#include <array>
#include <cstring>

namespace switchyard::providers {

using json = nlohmann::json;

bool json_nesting_exceeds(std::string_view text, std::size_t max) {
  std::size_t depth = 0;
  bool in_string = false;
  bool escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max) {
        return true;
      }
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return false;
}

std::string upstream_call::joined_body() const {
  if (body_parts.empty()) {
    return body;
  }
  std::string out;
  for (auto p : body_parts) {
    out.append(p.data(), p.size());
  }
  return out;
}

bool is_gateway_field(std::string_view name) {
  // tags: LiteLLM moves them into the request's metadata (spend tags, tag routing).
  // additional_drop_params: read by the adapters (the names it lists are not sent), as
  // LiteLLM reads it as a completion() argument and never sends it.
  static constexpr std::array<std::string_view, 18> fields = {
      "mock_response",   "mock_testing_fallbacks", "mock_testing_rate_limit_error", "fallbacks",
      "disable_fallbacks", "num_retries",          "metadata",                      "cache",
      "caching",         "drop_params",            "api_key",                       "api_base",
      "base_url",        "context_window_fallbacks", "litellm_call_id",             "proxy_server_request",
      "tags",            "additional_drop_params"};
  for (auto f : fields) {
    if (f == name) {
      return true;
    }
  }
  return false;
}

std::string_view api_base_view(const config::deployment& d) {
  std::string_view base = d.api_base;
  if (base.empty()) {
    base = d.provider->default_api_base;  // the registry's literal: no allocation
  }
  while (!base.empty() && base.back() == '/') {
    base.remove_suffix(1);
  }
  return base;
}

std::string api_base_of(const config::deployment& d) { return std::string(api_base_view(d)); }

std::string_view strip_query_view(std::string_view url) {
  auto q = url.find('?');
  return q == std::string_view::npos ? url : url.substr(0, q);
}

std::string strip_query(std::string_view url) { return std::string(strip_query_view(url)); }

usage usage_of(const json& obj) {
  usage u;
  if (!obj.is_object()) {
    return u;
  }
  auto it = obj.find("usage");
  if (it == obj.end() || !it->is_object()) {
    return u;
  }
  return usage_from([&](std::string_view object, const char* k) -> long long {
    const json* o = &*it;
    if (!object.empty()) {
      auto sub = it->find(object);
      if (sub == it->end() || !sub->is_object()) {
        return 0;
      }
      o = &*sub;
    }
    return core::count_or(*o, k);
  });
}

core::error upstream_error(int status, std::string_view body, std::string_view provider_label) {
  std::string message;
  json j = json::parse(body, nullptr, false);
  if (!j.is_discarded() && j.is_object()) {
    auto e = j.find("error");
    if (e != j.end()) {
      if (e->is_object()) {
        auto m = e->find("message");
        if (m != e->end() && m->is_string()) {
          message = m->get<std::string>();
        }
        // The provider's code (content_policy_violation, context_length_exceeded) says
        // what the message may not: the router's fallbacks choose by it, and LiteLLM's
        // message carries the whole body too.
        auto c = e->find("code");
        if (c != e->end() && c->is_string() && !c->get_ref<const std::string&>().empty() && !message.empty() &&
            message.find(c->get_ref<const std::string&>()) == std::string::npos) {
          message += " (code: " + c->get<std::string>() + ")";
        }
      } else if (e->is_string()) {
        message = e->get<std::string>();
      }
    }
    if (message.empty()) {
      auto m = j.find("message");
      if (m != j.end() && m->is_string()) {
        message = m->get<std::string>();
      }
    }
  }
  if (message.empty()) {
    message = std::string(body.substr(0, 2000));
  }
  if (message.empty()) {
    message = "upstream returned HTTP " + std::to_string(status) + " with an empty body";
  }
  auto err = core::upstream_status_error(status, std::string(provider_label) + " error: " + message);
  return err;
}

core::result<std::string> encode_embeddings_base64(std::string_view body) {
  json j = json::parse(body, nullptr, false);
  auto data = j.is_object() ? j.find("data") : j.end();
  if (j.is_discarded() || !j.is_object() || data == j.end() || !data->is_array()) {
    return core::make_error(core::errc::upstream_error, "embeddings response is not an OpenAI list");
  }
  std::string raw;
  std::string b64;
  for (auto& item : *data) {
    auto e = item.find("embedding");
    if (e == item.end() || !e->is_array()) {
      continue;
    }
    raw.resize(e->size() * 4);
    std::size_t i = 0;
    for (const auto& v : *e) {
      float f = v.is_number() ? v.get<float>() : 0.0F;
      std::memcpy(raw.data() + 4 * i++, &f, 4);  // x86-64 and aarch64 are little-endian
    }
    b64.assign(4 * ((raw.size() + 2) / 3) + 1, '\0');
    int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(b64.data()),
                            reinterpret_cast<const unsigned char*>(raw.data()), static_cast<int>(raw.size()));
    b64.resize(static_cast<std::size_t>(n));
    *e = b64;
  }
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

namespace {

long long estimate_tokens(std::string_view s) {
  return static_cast<long long>((s.size() + 3) / 4);
}

long long prompt_tokens_of(const json& request) {
  long long n = 0;
  auto m = request.find("messages");
  if (m != request.end() && m->is_array()) {
    for (const auto& msg : *m) {
      n += 4;
      auto c = msg.find("content");
      if (c != msg.end() && c->is_string()) {
        n += estimate_tokens(c->get_ref<const std::string&>());
      }
    }
  }
  return n > 0 ? n : 1;
}

}  // namespace

std::string mock_chat_completion(std::string_view model, std::string_view content, const json& request,
                                 std::string_view id, long long created) {
  long long p = prompt_tokens_of(request);
  long long c = estimate_tokens(content);
  json j = {{"id", id},
            {"object", "chat.completion"},
            {"created", created},
            {"model", model},
            {"choices", json::array({{{"index", 0},
                                      {"message", {{"role", "assistant"}, {"content", content}}},
                                      {"finish_reason", "stop"},
                                      {"logprobs", nullptr}}})},
            {"usage", {{"prompt_tokens", p}, {"completion_tokens", c}, {"total_tokens", p + c}}}};
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string mock_text_completion(std::string_view model, std::string_view content, const json& request,
                                 std::string_view id, long long created) {
  long long p = 1;
  if (auto pr = request.find("prompt"); pr != request.end() && pr->is_string()) {
    p = std::max<long long>(1, estimate_tokens(pr->get_ref<const std::string&>()));
  }
  long long c = estimate_tokens(content);
  json j = {{"id", id},
            {"object", "text_completion"},
            {"created", created},
            {"model", model},
            {"choices", json::array({{{"index", 0}, {"text", content}, {"finish_reason", "stop"}, {"logprobs", nullptr}}})},
            {"usage", {{"prompt_tokens", p}, {"completion_tokens", c}, {"total_tokens", p + c}}}};
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::vector<std::string> mock_chat_stream(std::string_view model, std::string_view content, const json& request,
                                          std::string_view id, long long created, bool include_usage) {
  std::vector<std::string> frames;
  auto chunk = [&](json delta, json finish) {
    json j = {{"id", id},
              {"object", "chat.completion.chunk"},
              {"created", created},
              {"model", model},
              {"choices", json::array({{{"index", 0}, {"delta", std::move(delta)}, {"finish_reason", finish}}})}};
    frames.push_back("data: " + j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n");
  };
  chunk({{"role", "assistant"}, {"content", ""}}, nullptr);
  // One chunk per word (with its following spaces), as a model would stream.
  std::size_t i = 0;
  while (i < content.size()) {
    std::size_t j = content.find(' ', i);
    j = (j == std::string_view::npos) ? content.size() : j;
    while (j < content.size() && content[j] == ' ') {
      ++j;
    }
    chunk({{"content", content.substr(i, j - i)}}, nullptr);
    i = j;
  }
  chunk(json::object(), "stop");
  if (include_usage) {
    long long p = prompt_tokens_of(request);
    long long c = estimate_tokens(content);
    json u = {{"id", id},
              {"object", "chat.completion.chunk"},
              {"created", created},
              {"model", model},
              {"choices", json::array()},
              {"usage", {{"prompt_tokens", p}, {"completion_tokens", c}, {"total_tokens", p + c}}}};
    frames.push_back("data: " + u.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n");
  }
  frames.emplace_back("data: [DONE]\n\n");
  return frames;
}

}  // namespace switchyard::providers
