// The Bedrock adapter (`bedrock/<model id>`, `bedrock/converse/<model id>`): OpenAI chat
// requests -> the Converse API (POST /model/{id}/converse, or /converse-stream whose
// answer is the binary application/vnd.amazon.eventstream framing); OpenAI embeddings ->
// InvokeModel (POST /model/{id}/invoke) with the Titan or Cohere body. Every request
// is signed with AWS Signature Version 4 (service "bedrock").
//
// Decisions:
// - Credentials: litellm_params aws_access_key_id / aws_secret_access_key /
//   aws_session_token / aws_region_name; the config loader fills absent ones from
//   AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN and AWS_REGION_NAME /
//   AWS_REGION / AWS_DEFAULT_REGION. Region default us-east-1. No credentials: 401
//   naming what to set (no instance-role or profile lookup: that would be I/O here).
// - Endpoint: aws_bedrock_runtime_endpoint, else api_base, else
//   https://bedrock-runtime.{region}.amazonaws.com. The model id is URI-encoded in the
//   path (':' of versioned ids, '/' of ARNs) and encoded again in the canonical URI, as
//   AWS's SDKs sign for every service but S3.
// - Signed headers: content-type, host, x-amz-date and, with a session token,
//   x-amz-security-token. extra_headers are sent unsigned.
// - `bedrock/invoke/<id>` is served through Converse too (one request shape for every
//   model family Converse covers).
// - OpenAI parameters Converse cannot take (n > 1, logprobs, penalties, seed,
//   response_format json modes, ...) -> 400 naming the parameter, or dropped with
//   drop_params. Other non-OpenAI fields (top_k, ...) go to
//   additionalModelRequestFields, as LiteLLM does.
// - Images: base64 data URLs only (Converse takes bytes; fetching an http URL would
//   be I/O in the request builder) -> 400 otherwise.
// - tool_choice "none": the tools are not sent (Converse has no "none"), unless the
//   messages hold tool calls or results (Bedrock wants a toolConfig then): the tools are
//   sent without toolChoice.
// - Titan embeddings take one text per call: a list of several inputs is a 400.
// - Stream exceptions (`:message-type exception`) map by `:exception-type`:
//   throttlingException 429, validationException 400, accessDeniedException 403,
//   resourceNotFoundException 404, modelTimeoutException 408,
//   serviceUnavailableException 503, others (internalServerException,
//   modelStreamErrorException, ...) 500.
#include "switchyard/providers/bedrock.hpp"

#include "adapter_util.hpp"
#include "bedrock_stream.hpp"
#include "switchyard/core/ids.hpp"
#include "switchyard/providers/aws_eventstream.hpp"
#include "switchyard/providers/json_scan.hpp"
#include "switchyard/providers/sigv4.hpp"

#include "../upstream/url.hpp"

#include <map>

namespace switchyard::providers {

namespace {

using detail::field;
using detail::string_field;
using json = nlohmann::json;

constexpr std::string_view label = "BedrockException";
constexpr std::string_view provider = "bedrock";
constexpr std::string_view default_region = "us-east-1";

bool is_unsupported_openai_param(std::string_view k) {
  static constexpr std::string_view names[] = {
      "n",        "logprobs",  "top_logprobs",  "presence_penalty", "frequency_penalty", "logit_bias",
      "seed",     "functions", "function_call", "modalities",       "audio",             "prediction",
      "service_tier", "store", "web_search_options", "suffix",     "echo",              "best_of",
      "prompt_cache_key", "safety_identifier", "verbosity",         "response_format",   "reasoning_effort",
      "parallel_tool_calls"};
  for (auto n : names) {
    if (n == k) {
      return true;
    }
  }
  return false;
}

bool is_client_option(std::string_view k) {
  return k == "extra_headers" || k == "extra_body" || k == "timeout" || k == "stream_timeout" || k == "tags" ||
         k == "guardrails" || k == "user" || k == "metadata";
}

std::string param_string(const config::deployment& d, const char* key) {
  if (!d.litellm_params.is_object()) {
    return {};
  }
  auto it = d.litellm_params.find(key);
  return it != d.litellm_params.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::string region_of(const config::deployment& d) {
  auto r = param_string(d, "aws_region_name");
  return r.empty() ? std::string(default_region) : r;
}

std::string endpoint_of(const config::deployment& d) {
  std::string base = param_string(d, "aws_bedrock_runtime_endpoint");
  if (base.empty()) {
    base = d.api_base;
  }
  if (base.empty()) {
    base = "https://bedrock-runtime." + region_of(d) + ".amazonaws.com";
  }
  while (!base.empty() && base.back() == '/') {
    base.pop_back();
  }
  return base;
}

bool is_titan_embedding(std::string_view id) { return id.find("amazon.titan-embed") != std::string_view::npos; }
bool is_cohere_embedding(std::string_view id) { return id.find("cohere.embed") != std::string_view::npos; }

// ---- request: messages ------------------------------------------------------

std::string at(std::size_t i) { return "messages[" + std::to_string(i) + "]"; }

core::result<json> image_block(const json& part, const std::string& where) {
  auto du = detail::parse_data_url(detail::image_url_of(part));
  if (!du) {
    return detail::bad_param(where + ": bedrock needs images as base64 data URLs (data:image/png;base64,...)", where);
  }
  std::string_view mt = du->media_type;
  std::string format;
  if (mt == "image/png") {
    format = "png";
  } else if (mt == "image/jpeg" || mt == "image/jpg") {
    format = "jpeg";
  } else if (mt == "image/gif") {
    format = "gif";
  } else if (mt == "image/webp") {
    format = "webp";
  } else {
    return detail::bad_param(where + ": bedrock takes png, jpeg, gif or webp images, not " + std::string(mt), where);
  }
  return detail::ok(json{{"image", {{"format", format}, {"source", {{"bytes", du->data}}}}}});
}

core::result<json> content_blocks(const json& content, const std::string& where) {
  json blocks = json::array();
  if (content.is_null()) {
    return detail::ok(std::move(blocks));
  }
  if (content.is_string()) {
    if (!content.get_ref<const std::string&>().empty()) {
      blocks.push_back({{"text", content}});
    }
    return detail::ok(std::move(blocks));
  }
  if (!content.is_array()) {
    return detail::bad_param(where + ".content must be a string or a list of content parts", where + ".content");
  }
  for (std::size_t j = 0; j < content.size(); ++j) {
    const json& part = content[j];
    std::string pw = where + ".content[" + std::to_string(j) + "]";
    if (!part.is_object()) {
      return detail::bad_param(pw + " must be an object", pw);
    }
    auto type = string_field(part, "type");
    if (type == "text") {
      if (auto text = string_field(part, "text"); !text.empty()) {
        blocks.push_back({{"text", text}});
      }
    } else if (type == "image_url") {
      auto b = image_block(part, pw);
      if (!b) {
        return b.error();
      }
      blocks.push_back(std::move(*b));
    } else {
      return detail::bad_param(pw + ": bedrock does not take content parts of type '" + std::string(type) + "'", pw);
    }
  }
  return detail::ok(std::move(blocks));
}

void append(json& messages, std::string_view role, json blocks) {
  if (blocks.empty()) {
    return;
  }
  if (!messages.empty() && messages.back()["role"] == role) {
    auto& c = messages.back()["content"];
    for (auto& b : blocks) {
      c.push_back(std::move(b));
    }
    return;
  }
  messages.push_back({{"role", role}, {"content", std::move(blocks)}});
}

core::result<json> tool_use_blocks(const json& calls, const std::string& where) {
  json blocks = json::array();
  if (!calls.is_array()) {
    return detail::bad_param(where + ".tool_calls must be a list", where + ".tool_calls");
  }
  for (std::size_t j = 0; j < calls.size(); ++j) {
    const json& c = calls[j];
    std::string cw = where + ".tool_calls[" + std::to_string(j) + "]";
    const json* fn = field(c, "function");
    if (fn == nullptr || !fn->is_object()) {
      return detail::bad_param(cw + ".function is required", cw + ".function");
    }
    json input = json::object();
    const json* args = field(*fn, "arguments");
    if (args != nullptr && args->is_string()) {
      const auto& s = args->get_ref<const std::string&>();
      if (!s.empty()) {
        input = detail::parse_bounded(s);
        if (input.is_discarded() || !input.is_object()) {
          return detail::bad_param(cw + ".function.arguments must be a JSON object", cw + ".function.arguments");
        }
      }
    } else if (args != nullptr && args->is_object()) {
      input = *args;
    }
    blocks.push_back(
        {{"toolUse", {{"toolUseId", string_field(c, "id")}, {"name", string_field(*fn, "name")}, {"input", input}}}});
  }
  return detail::ok(std::move(blocks));
}

core::result<void> convert_messages(const json& msgs, json& out) {
  if (!msgs.is_array()) {
    return detail::bad_param("messages must be a list", "messages");
  }
  json system = json::array();
  json messages = json::array();
  for (std::size_t i = 0; i < msgs.size(); ++i) {
    const json& m = msgs[i];
    std::string where = at(i);
    if (!m.is_object()) {
      return detail::bad_param(where + " must be an object", where);
    }
    auto role = string_field(m, "role");
    const json* content = field(m, "content");
    const json null_content;
    const json& c = content != nullptr ? *content : null_content;
    if (role == "system" || role == "developer") {
      if (auto text = detail::content_text(c, "\n"); !text.empty()) {
        system.push_back({{"text", text}});
      }
    } else if (role == "user") {
      auto blocks = content_blocks(c, where);
      if (!blocks) {
        return blocks.error();
      }
      append(messages, "user", std::move(*blocks));
    } else if (role == "assistant") {
      auto blocks = content_blocks(c, where);
      if (!blocks) {
        return blocks.error();
      }
      if (const json* calls = field(m, "tool_calls")) {
        auto uses = tool_use_blocks(*calls, where);
        if (!uses) {
          return uses.error();
        }
        for (auto& u : *uses) {
          blocks->push_back(std::move(u));
        }
      }
      append(messages, "assistant", std::move(*blocks));
    } else if (role == "tool") {
      auto id = string_field(m, "tool_call_id");
      if (id.empty()) {
        return detail::bad_param(where + ".tool_call_id is required for tool messages", where + ".tool_call_id");
      }
      json result = {{"toolUseId", id}, {"content", json::array({{{"text", detail::content_text(c)}}})}};
      append(messages, "user", json::array({{{"toolResult", std::move(result)}}}));
    } else {
      return detail::bad_param(where + ".role '" + std::string(role) + "' is not a chat role for bedrock",
                               where + ".role");
    }
  }
  out["messages"] = std::move(messages);
  if (!system.empty()) {
    out["system"] = std::move(system);
  }
  return {};
}

core::result<json> convert_tools(const json& tools) {
  if (!tools.is_array()) {
    return detail::bad_param("tools must be a list", "tools");
  }
  json out = json::array();
  for (std::size_t i = 0; i < tools.size(); ++i) {
    const json& t = tools[i];
    std::string where = "tools[" + std::to_string(i) + "]";
    const json* fn = t.is_object() ? field(t, "function") : nullptr;
    if (fn == nullptr || !fn->is_object() || string_field(t, "type") != "function") {
      return detail::bad_param(where + ": bedrock takes function tools ({type: function, function: {...}})", where);
    }
    auto name = string_field(*fn, "name");
    if (name.empty()) {
      return detail::bad_param(where + ".function.name is required", where + ".function.name");
    }
    json spec = {{"name", name}};
    if (auto desc = string_field(*fn, "description"); !desc.empty()) {
      spec["description"] = desc;
    }
    const json* params = field(*fn, "parameters");
    spec["inputSchema"] = {{"json", (params != nullptr && params->is_object())
                                        ? *params
                                        : json{{"type", "object"}, {"properties", json::object()}}}};
    out.push_back({{"toolSpec", std::move(spec)}});
  }
  return detail::ok(std::move(out));
}

// OpenAI tool_choice -> Converse toolChoice; json(nullptr) for "none".
core::result<json> convert_tool_choice(const json& tc) {
  if (tc.is_string()) {
    const auto& s = tc.get_ref<const std::string&>();
    if (s == "auto") {
      return detail::ok(json{{"auto", json::object()}});
    }
    if (s == "required") {
      return detail::ok(json{{"any", json::object()}});
    }
    if (s == "none") {
      return detail::ok(json(nullptr));
    }
  } else if (tc.is_object() && string_field(tc, "type") == "function") {
    const json* fn = field(tc, "function");
    auto name = fn != nullptr ? string_field(*fn, "name") : std::string_view{};
    if (!name.empty()) {
      return detail::ok(json{{"tool", {{"name", name}}}});
    }
  }
  return detail::bad_param("tool_choice must be \"auto\", \"required\", \"none\" or {\"type\": \"function\", "
                           "\"function\": {\"name\": ...}}",
                           "tool_choice");
}

// Whether converted Converse messages hold toolUse or toolResult blocks.
bool has_tool_blocks(const json& messages) {
  for (const auto& m : messages) {
    const json* content = field(m, "content");
    if (content == nullptr || !content->is_array()) {
      continue;
    }
    for (const auto& b : *content) {
      if (b.contains("toolUse") || b.contains("toolResult")) {
        return true;
      }
    }
  }
  return false;
}

core::result<json> converse_body(const config::deployment& d, const json& body, const build_options& opts) {
  json out = json::object();
  const json* msgs = field(body, "messages");
  if (msgs == nullptr) {
    return detail::bad_param("messages is required", "messages");
  }
  if (auto r = convert_messages(*msgs, out); !r) {
    return r.error();
  }
  json inference = json::object();
  json additional = json::object();
  json tools;
  std::optional<json> tool_choice;
  for (auto it = body.begin(); it != body.end(); ++it) {
    const std::string& k = it.key();
    const json& v = it.value();
    if (is_gateway_field(k) || is_client_option(k) || v.is_null() || k == "model" || k == "messages" ||
        k == "stream" || k == "stream_options") {
      continue;
    }
    if (k == "max_tokens" || k == "max_completion_tokens") {
      if (!v.is_number_integer() || v.get<long long>() < 1) {
        return detail::bad_param(k + " must be a positive integer", k);
      }
      if (k == "max_completion_tokens" || !inference.contains("maxTokens")) {
        inference["maxTokens"] = v;
      }
    } else if (k == "temperature") {
      inference["temperature"] = v;
    } else if (k == "top_p") {
      inference["topP"] = v;
    } else if (k == "stop") {
      json seqs = json::array();
      for (auto& s : detail::stop_list(v)) {
        seqs.push_back(std::move(s));
      }
      if (!seqs.empty()) {
        inference["stopSequences"] = std::move(seqs);
      }
    } else if (k == "tools") {
      auto t = convert_tools(v);
      if (!t) {
        return t.error();
      }
      tools = std::move(*t);
    } else if (k == "tool_choice") {
      auto tc = convert_tool_choice(v);
      if (!tc) {
        return tc.error();
      }
      tool_choice = std::move(*tc);
    } else if (is_unsupported_openai_param(k)) {
      if (detail::is_noop_value(k, v) || opts.drop_params || (k == "response_format" && string_field(v, "type") == "text")) {
        continue;
      }
      return detail::unsupported_param(provider, k, d);
    } else if (k == "additionalModelRequestFields" && v.is_object()) {
      for (auto a = v.begin(); a != v.end(); ++a) {
        additional[a.key()] = a.value();
      }
    } else if (k == "guardrailConfig" || k == "performanceConfig" || k == "requestMetadata" ||
               k == "promptVariables") {
      out[k] = v;  // Converse's own top-level fields, as sent
    } else {
      additional[k] = v;  // a model's own parameter (top_k, ...)
    }
  }
  // Converse has no "none": the tools are left out instead. But Bedrock refuses toolUse and
  // toolResult blocks without a toolConfig, so a conversation that holds some keeps its
  // tools, without toolChoice (what LiteLLM sends when it drops "none").
  bool tools_off = tool_choice && tool_choice->is_null();
  if (tools_off && has_tool_blocks(out["messages"])) {
    tools_off = false;
    tool_choice.reset();
  }
  if (tools.is_array() && !tools.empty() && !tools_off) {
    json tc = {{"tools", std::move(tools)}};
    if (tool_choice) {
      tc["toolChoice"] = std::move(*tool_choice);
    }
    out["toolConfig"] = std::move(tc);
  }
  if (!inference.empty()) {
    out["inferenceConfig"] = std::move(inference);
  }
  if (!additional.empty()) {
    out["additionalModelRequestFields"] = std::move(additional);
  }
  return detail::ok(std::move(out));
}

core::result<json> embedding_body(const config::deployment& d, std::string_view id, const json& body,
                                  const build_options& opts) {
  const json* input = field(body, "input");
  std::vector<std::string> texts;
  if (input != nullptr && input->is_string()) {
    texts.push_back(input->get<std::string>());
  } else if (input != nullptr && input->is_array()) {
    for (const auto& s : *input) {
      if (!s.is_string()) {
        return detail::bad_param("input must be a string or a list of strings for bedrock embeddings", "input");
      }
      texts.push_back(s.get<std::string>());
    }
  }
  if (texts.empty()) {
    return detail::bad_param("input is required (a string or a list of strings)", "input");
  }
  if (is_titan_embedding(id)) {
    if (texts.size() != 1) {
      return detail::bad_param("bedrock Titan embedding models take one input per request", "input");
    }
    json out = {{"inputText", texts[0]}};
    if (const json* dims = field(body, "dimensions")) {
      if (id.find("titan-embed-text-v1") != std::string_view::npos) {
        if (!opts.drop_params) {
          return detail::unsupported_param(provider, "dimensions", d);
        }
      } else {
        out["dimensions"] = *dims;
      }
    }
    return detail::ok(std::move(out));
  }
  if (is_cohere_embedding(id)) {
    json out = {{"texts", texts}, {"input_type", "search_document"}};
    if (const json* it = field(body, "input_type"); it != nullptr && it->is_string()) {
      out["input_type"] = *it;
    }
    return detail::ok(std::move(out));
  }
  return core::make_error(core::errc::bad_request,
                          "bedrock embeddings are served for amazon.titan-embed-* and cohere.embed-* models, not '" +
                              std::string(id) + "'",
                          "model");
}

}  // namespace

std::string bedrock_model_id(const config::deployment& d) {
  std::string_view id = d.upstream_model;
  for (std::string_view route : {"converse/", "invoke/"}) {
    if (id.substr(0, route.size()) == route) {
      id.remove_prefix(route.size());
    }
  }
  return std::string(id);
}

core::result<upstream_call> build_bedrock_call(call_type type, const config::deployment& d, const json& body,
                                               const build_options& opts, std::chrono::system_clock::time_point now) {
  if (type == call_type::completion) {
    return core::make_error(core::errc::bad_request, "bedrock serves chat and embeddings, not /v1/completions",
                            "model");
  }
  if (!body.is_object()) {
    return detail::bad_param("the request body must be a JSON object", "");
  }
  aws::credentials creds{param_string(d, "aws_access_key_id"), param_string(d, "aws_secret_access_key"),
                         param_string(d, "aws_session_token")};
  if (creds.access_key_id.empty() || creds.secret_access_key.empty()) {
    return core::make_error(core::errc::unauthorized,
                            std::string(label) +
                                " - no AWS credentials for this deployment: set litellm_params aws_access_key_id and "
                                "aws_secret_access_key, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY");
  }
  const std::string id = bedrock_model_id(d);
  if (id.empty()) {
    return detail::bad_param("the bedrock deployment has no model id", "model");
  }
  // The deployment's request defaults and drop lists first, so that a default is
  // translated like the client's own member (max_tokens -> inferenceConfig.maxTokens).
  json storage;
  const json& request = detail::with_deployment_params(type, d, body, storage);
  core::result<json> payload = type == call_type::embedding ? embedding_body(d, id, request, opts)
                                                            : converse_body(d, request, opts);
  if (!payload) {
    return payload.error();
  }
  const char* action = type == call_type::embedding ? "/invoke" : (opts.stream ? "/converse-stream" : "/converse");
  upstream_call call;
  call.url = endpoint_of(d);
  std::string why;
  auto base = upstream::detail::parse_url(call.url, why);
  if (!base) {
    return core::make_error(core::errc::bad_request, "bedrock endpoint '" + call.url + "' is not a URL: " + why,
                            "api_base");
  }
  const auto q = base->target.find('?');
  std::string path = base->target.substr(0, q);
  while (!path.empty() && path.back() == '/') {
    path.pop_back();
  }
  path += "/model/" + aws::uri_encode(id, false) + action;
  call.url += "/model/" + aws::uri_encode(id, false) + action;
  call.body = detail::dump(*payload);

  const std::string date = aws::amz_date(now);
  header_list signed_headers{{"content-type", "application/json"}, {"host", base->host_header}, {"x-amz-date", date}};
  if (!creds.session_token.empty()) {
    signed_headers.emplace_back("x-amz-security-token", creds.session_token);
  }
  aws::sign_input in{"POST", path, "", &signed_headers, call.body};
  auto sig = aws::sign(in, creds, region_of(d), "bedrock", date);
  for (auto& h : signed_headers) {
    if (h.first != "host") {  // the client writes Host itself, with the same value
      call.headers.push_back(std::move(h));
    }
  }
  call.headers.emplace_back("authorization", std::move(sig.authorization));
  if (opts.stream && type != call_type::embedding) {
    call.headers.emplace_back("accept", "application/vnd.amazon.eventstream");
  } else {
    call.headers.emplace_back("accept", "application/json");
  }
  for (const auto& [k, v] : d.extra_headers) {
    call.headers.emplace_back(k, v);
  }
  return call;
}

namespace {

// ---- response ---------------------------------------------------------------

std::string finish_reason_of(std::string_view stop_reason) {
  if (stop_reason == "max_tokens" || stop_reason == "model_context_window_exceeded") {
    return "length";
  }
  if (stop_reason == "tool_use") {
    return "tool_calls";
  }
  if (stop_reason == "guardrail_intervened" || stop_reason == "content_filtered") {
    return "content_filter";
  }
  return "stop";  // end_turn, stop_sequence, absent
}

int status_of_exception(std::string_view type) {
  auto is = [&](std::string_view name) {
    // `:exception-type` is lower camel case ("throttlingException"); an HTTP error's
    // __type is upper ("ThrottlingException"), sometimes with a namespace prefix.
    if (type.size() < name.size()) {
      return false;
    }
    auto tail = type.substr(type.size() - name.size());
    return tail.substr(1) == name.substr(1) && (tail[0] | 0x20) == (name[0] | 0x20);
  };
  if (is("throttlingException") || is("modelNotReadyException") || is("serviceQuotaExceededException")) {
    return 429;
  }
  if (is("validationException")) {
    return 400;
  }
  if (is("accessDeniedException") || is("unrecognizedClientException")) {
    return 403;
  }
  if (is("resourceNotFoundException")) {
    return 404;
  }
  if (is("modelTimeoutException")) {
    return 408;
  }
  if (is("serviceUnavailableException")) {
    return 503;
  }
  return 500;
}

// Converse usage -> usage JSON + value. inputTokens excludes cache reads and writes;
// prompt_tokens counts them all (as for Anthropic), cache reads also as cached_tokens.
struct token_tally {
  long long input = 0;
  long long output = 0;
  long long cache_read = 0;
  long long cache_write = 0;
  bool seen = false;

  void update(const json& u) {
    set(detail::token_count(u, "inputTokens"), detail::token_count(u, "outputTokens"),
        detail::token_count(u, "cacheReadInputTokens"), detail::token_count(u, "cacheWriteInputTokens"));
  }
  void set(long long in, long long out, long long read, long long write) {
    input = in;
    output = out;
    cache_read = read;
    cache_write = write;
    seen = true;
  }
  long long prompt() const { return input + cache_read + cache_write; }
  json to_json() const {
    json u = detail::usage_json(prompt(), output);
    u["prompt_tokens_details"] = {{"cached_tokens", cache_read}};
    if (cache_read != 0 || cache_write != 0) {
      u["cache_read_input_tokens"] = cache_read;
      u["cache_creation_input_tokens"] = cache_write;
    }
    return u;
  }
  usage value() const {
    usage u = detail::usage_value(prompt(), output);
    u.cached_tokens = cache_read;
    u.cache_creation_tokens = cache_write;
    return u;
  }
};

core::error exception_error(std::string_view type, std::string_view payload) {
  json j = detail::parse_bounded(payload);
  std::string message = j.is_object() ? std::string(string_field(j, "message")) : std::string();
  if (message.empty() && j.is_object()) {
    message = std::string(string_field(j, "Message"));
  }
  if (message.empty()) {
    message = std::string(payload.substr(0, 2000));
  }
  std::string text = type.empty() ? message : std::string(type) + ": " + message;
  return upstream_error(status_of_exception(type), json{{"message", text}}.dump(), label);
}

core::result<translated_response> translate_converse(std::string_view body, std::string_view model) {
  json j = detail::parse_bounded(body);
  if (j.is_discarded() || !j.is_object()) {
    return detail::malformed_upstream(label, "the provider returned a response that is not valid JSON");
  }
  const json* output = field(j, "output");
  const json* message = output != nullptr ? field(*output, "message") : nullptr;
  const json* content = message != nullptr ? field(*message, "content") : nullptr;
  if (content == nullptr || !content->is_array()) {
    return detail::malformed_upstream(label, "the provider's response has no output.message.content list");
  }
  std::string text;
  std::string reasoning;
  json tool_calls = json::array();
  for (const auto& block : *content) {
    if (!block.is_object()) {
      continue;
    }
    if (const json* t = field(block, "text"); t != nullptr && t->is_string()) {
      text += t->get_ref<const std::string&>();
    } else if (const json* tu = field(block, "toolUse"); tu != nullptr && tu->is_object()) {
      const json* input = field(*tu, "input");
      tool_calls.push_back({{"id", string_field(*tu, "toolUseId")},
                            {"type", "function"},
                            {"function",
                             {{"name", string_field(*tu, "name")},
                              {"arguments", input != nullptr ? detail::dump(*input) : "{}"}}}});
    } else if (const json* rc = field(block, "reasoningContent"); rc != nullptr && rc->is_object()) {
      if (const json* rt = field(*rc, "reasoningText"); rt != nullptr && rt->is_object()) {
        reasoning += string_field(*rt, "text");
      }
    }
  }
  token_tally tally;
  if (const json* u = field(j, "usage"); u != nullptr && u->is_object()) {
    tally.update(*u);
  }
  json out = {{"id", "chatcmpl-" + core::uuid4()},
              {"object", "chat.completion"},
              {"created", detail::unix_now()},
              {"model", model}};
  json msg = {{"role", "assistant"}};
  msg["content"] = (text.empty() && !tool_calls.empty()) ? json(nullptr) : json(text);
  if (!reasoning.empty()) {
    msg["reasoning_content"] = reasoning;
  }
  if (!tool_calls.empty()) {
    msg["tool_calls"] = std::move(tool_calls);
  }
  out["choices"] = json::array({{{"index", 0},
                                 {"message", std::move(msg)},
                                 {"logprobs", nullptr},
                                 {"finish_reason", finish_reason_of(string_field(j, "stopReason"))}}});
  out["usage"] = tally.to_json();
  translated_response r;
  r.body = detail::dump(out);
  if (tally.seen) {
    r.tokens = tally.value();
  }
  return r;
}

core::result<translated_response> translate_embedding(std::string_view id, std::string_view body,
                                                      std::string_view model) {
  json j = detail::parse_bounded(body);
  if (j.is_discarded() || !j.is_object()) {
    return detail::malformed_upstream(label, "the provider returned an embedding response that is not valid JSON");
  }
  json data = json::array();
  long long prompt = 0;
  auto valid = [](const json& v) {
    if (!v.is_array()) {
      return false;
    }
    for (const auto& x : v) {
      if (!x.is_number()) {
        return false;
      }
    }
    return true;
  };
  if (is_titan_embedding(id)) {
    const json* e = field(j, "embedding");
    if (e == nullptr || !valid(*e)) {
      return detail::malformed_upstream(label, "the Titan response has no embedding list");
    }
    data.push_back({{"object", "embedding"}, {"index", 0}, {"embedding", *e}});
    prompt = detail::token_count(j, "inputTextTokenCount");
  } else {
    const json* e = field(j, "embeddings");
    if (e != nullptr && e->is_object()) {
      e = field(*e, "float");  // embedding_types responses
    }
    if (e == nullptr || !e->is_array()) {
      return detail::malformed_upstream(label, "the Cohere response has no embeddings list");
    }
    for (std::size_t i = 0; i < e->size(); ++i) {
      if (!valid((*e)[i])) {
        return detail::malformed_upstream(label, "the Cohere response has an embedding that is not a number list");
      }
      data.push_back({{"object", "embedding"}, {"index", i}, {"embedding", (*e)[i]}});
    }
  }
  json out = {{"object", "list"}, {"data", std::move(data)}, {"model", model},
              {"usage", {{"prompt_tokens", prompt}, {"total_tokens", prompt}}}};
  translated_response r;
  r.body = detail::dump(out);
  r.tokens = detail::usage_value(prompt, 0);
  return r;
}

// ---- stream -----------------------------------------------------------------

// Plain events, without a DOM. Nearly every event of an answer is one of five payloads: a
// text delta ({contentBlockIndex, delta: {text}}), messageStart ({role}), contentBlockStop
// ({contentBlockIndex}), messageStop ({stopReason}) and metadata ({usage, metrics}), each
// with `p`, the padding of random length Bedrock adds to every event (so that an event's
// size does not give its text away). Those are read from a scan of the payload (scan_json
// validates it as the DOM's parser would, then a walk over the valid text reads what the
// translation uses) and written by the same chunk_writer calls with the same decoded text:
// the very bytes of the DOM reading. What the reading cannot vouch for leaves the event to
// the DOM before anything is changed: a member the event is not documented to carry, a
// duplicate member, a delta other than one non-empty text (toolUse, reasoningContent,
// citation ...), a stopReason that is not a string, a usage count that is not a plain whole
// number or a usage member it does not know, a key with an escape inside the delta or the
// usage, any other event type (contentBlockStart included). Exceptions never reach it.
using detail::each_member;
using detail::kind_of;
using detail::plain_count;
using detail::text_of;

enum class plain_kind : std::uint8_t { message_start, block_delta, block_stop, message_stop, metadata };

struct plain_event {
  plain_kind kind = plain_kind::message_start;
  std::string_view text;         // block_delta: the text's literal (with its quotes)
  std::string_view stop_reason;  // message_stop: the stopReason literal, if any
  bool has_usage = false;
  // metadata's usage: inputTokens, outputTokens, cacheReadInputTokens, cacheWriteInputTokens
  long long counts[4] = {};
};

std::optional<plain_kind> plain_kind_of(std::string_view event_type) {
  if (event_type == "contentBlockDelta") {
    return plain_kind::block_delta;
  }
  if (event_type == "messageStart") {
    return plain_kind::message_start;
  }
  if (event_type == "contentBlockStop") {
    return plain_kind::block_stop;
  }
  if (event_type == "messageStop") {
    return plain_kind::message_stop;
  }
  if (event_type == "metadata") {
    return plain_kind::metadata;
  }
  return std::nullopt;
}

// The top-level members Bedrock's API reference lists for the event, and `p`.
bool is_documented_member(plain_kind kind, std::string_view key) {
  if (key == "p") {
    return true;
  }
  switch (kind) {
    case plain_kind::message_start: return key == "role";
    case plain_kind::block_delta: return key == "contentBlockIndex" || key == "delta";
    case plain_kind::block_stop: return key == "contentBlockIndex";
    case plain_kind::message_stop: return key == "stopReason" || key == "additionalModelResponseFields";
    case plain_kind::metadata:
      return key == "usage" || key == "metrics" || key == "trace" || key == "performanceConfig";
  }
  return false;
}

// delta {text}: one non-empty string (an empty one is left to the DOM, which writes nothing).
bool plain_delta(std::string_view object, plain_event& e) {
  return each_member(object,
                     [&](std::string_view key, detail::valid_json_walk& w) {
                       if (key != "text" || !e.text.empty()) {
                         return false;
                       }
                       const std::string_view value = w.value();
                       if (kind_of(value) != json_kind::string || value == R"("")") {
                         return false;
                       }
                       e.text = value;
                       return true;
                     }) &&
         !e.text.empty();
}

// usage: the counts token_tally reads, and totalTokens, each once and a plain whole number.
bool plain_usage(std::string_view object, plain_event& e) {
  static constexpr std::string_view names[] = {"inputTokens", "outputTokens", "cacheReadInputTokens",
                                               "cacheWriteInputTokens", "totalTokens"};
  bool seen[std::size(names)] = {};
  return each_member(object, [&](std::string_view key, detail::valid_json_walk& w) {
    std::size_t i = 0;
    while (i < std::size(names) && names[i] != key) {
      ++i;
    }
    if (i == std::size(names) || seen[i]) {
      return false;
    }
    seen[i] = true;
    const auto count = plain_count(w.value());
    if (!count) {
      return false;
    }
    if (i < std::size(e.counts)) {
      e.counts[i] = *count;
    }
    return true;
  });
}

bool read_plain_event(const json_scan& scan, plain_event& e) {
  const auto& members = scan.members;
  for (std::size_t i = 0; i < members.size(); ++i) {
    const json_member& m = members[i];
    if (!is_documented_member(e.kind, m.key)) {
      return false;
    }
    for (std::size_t k = 0; k < i; ++k) {
      if (members[k].key == m.key) {
        return false;  // a duplicate
      }
    }
    if (m.key == "delta") {
      if (m.kind != json_kind::object || !plain_delta(m.value, e)) {
        return false;
      }
    } else if (m.key == "stopReason") {
      if (m.kind != json_kind::string) {
        return false;
      }
      e.stop_reason = m.value;
    } else if (m.key == "usage") {
      if (m.kind != json_kind::object || !plain_usage(m.value, e)) {
        return false;
      }
      e.has_usage = true;
    }
    // role, contentBlockIndex, p, metrics, ...: not read
  }
  return e.kind != plain_kind::block_delta || !e.text.empty();
}

class converse_stream final : public stream_translator {
 public:
  converse_stream(std::string_view model, bool include_usage, stream_reading reading)
      : writer_("chatcmpl-" + core::uuid4(), detail::unix_now(), std::string(model), false),
        include_usage_(include_usage),
        reading_(reading) {}

  core::result<void> feed(std::string_view bytes, std::vector<std::string>& payloads) override {
    if (failure_) {
      return *failure_;
    }
    messages_.clear();
    auto bad = decoder_.feed(bytes, messages_);
    // Messages decoded before a bad frame still count (they reached us intact).
    for (const auto& m : messages_) {
      core::result<void> r;
      try {
        r = on_message(m, payloads);
      } catch (const json::exception&) {
        r = detail::malformed_upstream(label, "the provider sent a stream event this gateway cannot read");
      }
      if (!r) {
        failure_ = r.error();
        return r;
      }
    }
    if (bad) {
      failure_ = detail::malformed_upstream(label, "malformed event stream: " + *bad);
      return *failure_;
    }
    return {};
  }

  core::result<void> finish(std::vector<std::string>& payloads) override {
    if (failure_) {
      return *failure_;
    }
    if (!stop_seen_ || decoder_.pending() != 0) {
      failure_ = detail::malformed_upstream(
          label, decoder_.pending() != 0 ? "the event stream ended inside a message (truncated frame)"
                                         : "the event stream ended before messageStop (stream cut)");
      return *failure_;
    }
    if (include_usage_) {
      writer_.usage_chunk(tally_.to_json(), payloads);
    }
    return {};
  }

  const usage& tokens() const override { return usage_; }

 private:
  void ensure_started(std::vector<std::string>& out) {
    if (!started_) {
      started_ = true;
      writer_.role(out);
    }
  }

  static long long block_index(const json& j) {
    const json* i = field(j, "contentBlockIndex");
    return (i != nullptr && i->is_number_integer()) ? i->get<long long>() : 0;
  }

  core::result<void> on_message(const aws::event_message& m, std::vector<std::string>& out) {
    const auto mtype = m.header(":message-type");
    if (mtype == "exception") {
      return exception_error(m.header(":exception-type"), m.payload);
    }
    if (mtype == "error") {
      return exception_error(m.header(":error-code"), json{{"message", m.header(":error-message")}}.dump());
    }
    if (mtype != "event") {
      return {};
    }
    const auto etype = m.header(":event-type");
    if (stop_seen_ && etype != "metadata") {
      return {};  // after messageStop only the usage counts
    }
    if (!reading_.dom_only && plain(etype, m.payload, out)) {
      if (reading_.scanned != nullptr) {
        ++*reading_.scanned;
      }
      return {};
    }
    json j = detail::parse_bounded(m.payload);
    if (j.is_discarded() || !j.is_object()) {
      return detail::malformed_upstream(label, "the provider sent a stream event that is not valid JSON");
    }
    if (etype == "messageStart") {
      ensure_started(out);
    } else if (etype == "contentBlockStart") {
      ensure_started(out);
      const json* start = field(j, "start");
      const json* tu = start != nullptr ? field(*start, "toolUse") : nullptr;
      if (tu != nullptr && tu->is_object()) {
        const int index = tool_count_++;
        tools_[block_index(j)] = index;
        std::string id(string_field(*tu, "toolUseId"));
        if (id.empty()) {
          id = "tooluse_" + core::random_hex(12);
        }
        writer_.tool_call(index, id, string_field(*tu, "name"), "", out);
      }
    } else if (etype == "contentBlockDelta") {
      ensure_started(out);
      const json* delta = field(j, "delta");
      if (delta == nullptr || !delta->is_object()) {
        return detail::malformed_upstream(label, "contentBlockDelta without a delta");
      }
      if (auto t = string_field(*delta, "text"); !t.empty()) {
        writer_.content(t, out);
      } else if (const json* tu = field(*delta, "toolUse"); tu != nullptr && tu->is_object()) {
        auto it = tools_.find(block_index(j));
        if (it == tools_.end()) {
          return detail::malformed_upstream(label, "a toolUse delta for a content block that is not a started tool use");
        }
        if (auto part = string_field(*tu, "input"); !part.empty()) {
          writer_.tool_call(it->second, "", "", part, out);
        }
      } else if (const json* rc = field(*delta, "reasoningContent"); rc != nullptr && rc->is_object()) {
        if (auto t = string_field(*rc, "text"); !t.empty()) {
          writer_.reasoning(t, out);
        }
      }
    } else if (etype == "messageStop") {
      ensure_started(out);
      writer_.finish(finish_reason_of(string_field(j, "stopReason")), out);
      stop_seen_ = true;
    } else if (etype == "metadata") {
      if (const json* u = field(j, "usage"); u != nullptr && u->is_object()) {
        tally_.update(*u);
        usage_ = tally_.value();
      }
    }
    // contentBlockStop and event types added later carry nothing OpenAI has.
    return {};
  }

  // A plain event (read_plain_event) translated as on_message's DOM reading translates it.
  // False, and nothing changed, for any other.
  bool plain(std::string_view event_type, std::string_view payload, std::vector<std::string>& out) {
    const auto kind = plain_kind_of(event_type);
    if (!kind || !scan_json(payload, scan_, max_json_depth) || scan_.root != json_kind::object) {
      return false;
    }
    plain_ = plain_event{};
    plain_.kind = *kind;
    if (!read_plain_event(scan_, plain_)) {
      return false;
    }
    switch (*kind) {
      case plain_kind::message_start: ensure_started(out); break;
      case plain_kind::block_delta:
        ensure_started(out);
        writer_.content(text_of(plain_.text, decoded_), out);
        break;
      case plain_kind::block_stop: break;
      case plain_kind::message_stop:
        ensure_started(out);
        writer_.finish(finish_reason_of(plain_.stop_reason.empty() ? std::string_view{}
                                                                   : text_of(plain_.stop_reason, decoded_)),
                       out);
        stop_seen_ = true;
        break;
      case plain_kind::metadata:
        if (plain_.has_usage) {
          tally_.set(plain_.counts[0], plain_.counts[1], plain_.counts[2], plain_.counts[3]);
          usage_ = tally_.value();
        }
        break;
    }
    return true;
  }

  detail::chunk_writer writer_;
  bool include_usage_;
  stream_reading reading_;
  json_scan scan_;  // plain events' scans and readings, reused across events
  plain_event plain_;
  std::string decoded_;
  aws::event_stream_decoder decoder_;
  std::vector<aws::event_message> messages_;
  std::map<long long, int> tools_;
  token_tally tally_;
  usage usage_;
  std::optional<core::error> failure_;
  int tool_count_ = 0;
  bool started_ = false;
  bool stop_seen_ = false;  // messageStop: the answer is complete (metadata may follow)
};

class bedrock final : public adapter {
 public:
  core::result<upstream_call> build(call_type type, const config::deployment& d, const json& body,
                                    const build_options& opts) const override {
    try {
      return build_bedrock_call(type, d, body, opts, std::chrono::system_clock::now());
    } catch (const json::exception& e) {
      return detail::bad_param(std::string("could not translate the request for bedrock: ") + e.what(), "");
    }
  }

  core::result<translated_response> translate_response(call_type type, const config::deployment& d,
                                                       std::string_view body,
                                                       std::string_view model) const override {
    try {
      if (type == call_type::embedding) {
        return translate_embedding(bedrock_model_id(d), body, model);
      }
      return translate_converse(body, model);
    } catch (const json::exception& e) {
      return detail::malformed_upstream(label, std::string("unreadable response: ") + e.what());
    }
  }

  std::unique_ptr<stream_translator> make_stream(call_type, const config::deployment&, std::string_view model,
                                                 bool include_usage) const override {
    return std::make_unique<converse_stream>(model, include_usage, stream_reading{});
  }

  // Bedrock's HTTP errors: the status is already the right one (ThrottlingException
  // 429, ValidationException 400, AccessDeniedException 403, ...); the body is
  // {"message": ...} (some services say "Message"), sometimes with "__type".
  core::error translate_error(const config::deployment&, int status, std::string_view body) const override {
    json j = detail::parse_bounded(body);
    if (!j.is_object()) {
      return upstream_error(status, body, label);
    }
    std::string message(string_field(j, "message"));
    if (message.empty()) {
      message = string_field(j, "Message");
    }
    auto type = string_field(j, "__type");
    if (auto hash = type.rfind('#'); hash != std::string_view::npos) {
      type.remove_prefix(hash + 1);
    }
    if (message.empty()) {
      return upstream_error(status, body, label);
    }
    if (!type.empty()) {
      message = std::string(type) + ": " + message;
    }
    return upstream_error(status, json{{"message", message}}.dump(), label);
  }
};

}  // namespace

const adapter& bedrock_adapter() {
  static const bedrock a;
  return a;
}

std::unique_ptr<stream_translator> make_bedrock_stream(std::string_view model, bool include_usage,
                                                       stream_reading reading) {
  return std::make_unique<converse_stream>(model, include_usage, reading);
}

}  // namespace switchyard::providers
