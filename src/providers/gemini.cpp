// Google's generateContent format (gemini_format.hpp) and the Google AI Studio adapter
// (`gemini/<model>`): POST {base}/v1beta/models/{model}:generateContent?key=<key>, or
// :streamGenerateContent?key=<key>&alt=sse (the key in the query, as LiteLLM sends it;
// x-litellm-model-api-base never shows a query); embeddings through embedContent (one
// input) and batchEmbedContents (a list). An api_base that already names the model
// (".../models/<model>", a proxy such as Cloudflare's AI Gateway) is used as LiteLLM uses
// it: {api_base}:{method}, the key as a bearer token.
//
// Decisions:
// - system and developer messages -> systemInstruction; assistant -> role "model" with its
//   tool_calls as functionCall parts; tool messages -> functionResponse parts in a "user"
//   turn, named after the assistant's call with the same id ({"content": <text>} as the
//   response, or the JSON object itself when the text is one). Consecutive turns of one
//   role are merged (Gemini wants them alternating).
// - Images: data URLs -> inlineData; http(s) and gs:// URLs -> fileData with the media type
//   guessed from the extension.
// - Tool and response schemas lose what Gemini's OpenAPI subset rejects ($schema,
//   additionalProperties, strict), at every level, and their $refs to $defs / definitions
//   are replaced by the definitions.
// - tool_choice auto/none/required -> functionCallingConfig AUTO/NONE/ANY; a named
//   function -> ANY with allowedFunctionNames.
// - temperature, top_p, top_k, max_tokens / max_completion_tokens, stop, n, seed,
//   presence/frequency_penalty, response_format (json_object -> responseMimeType
//   application/json; json_schema also -> responseSchema), reasoning_effort (thinkingConfig
//   budget: low/minimal 1024, medium 2048, high 4096, none 0) -> generationConfig.
// - OpenAI parameters Gemini has no equivalent for (logit_bias, logprobs, ...) -> 400
//   naming the parameter, or dropped with drop_params; other fields pass through (Gemini's
//   own: safetySettings, cachedContent, labels, ...); safety_settings is renamed.
// - A functionCall's thoughtSignature (Gemini 3 wants it back) is kept in the tool call id
//   (call_<hex>__thought__<signature>, LiteLLM's form) and sent back from it.
// - n -> candidateCount; every candidate is a choice, streamed ones too (chunks carry the
//   candidate's index).
// - finishReason: STOP -> stop (tool_calls when the answer calls tools), MAX_TOKENS ->
//   length, SAFETY / RECITATION / BLOCKLIST / PROHIBITED_CONTENT / SPII / IMAGE_SAFETY ->
//   content_filter, others -> stop.
// - usageMetadata: prompt = promptTokenCount, completion = candidatesTokenCount plus
//   thoughtsTokenCount (Gemini counts thoughts apart), cached = cachedContentTokenCount,
//   reasoning = thoughtsTokenCount.
// - groundingMetadata, urlContextMetadata, safetyRatings, citationMetadata -> LiteLLM's
//   vertex_ai_* lists (every answer; a stream's chunks only for events that have them),
//   grounding supports -> url_citation annotations, search queries -> usage's
//   web_search_requests.
#include "gemini_format.hpp"

#include "adapter_util.hpp"
#include "switchyard/core/ids.hpp"
#include "switchyard/core/json_get.hpp"
#include "switchyard/core/jwt.hpp"
#include "switchyard/providers/json_scan.hpp"
#include "switchyard/upstream/sse_parser.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <map>

namespace switchyard::providers {

namespace gemini_format {

namespace {

using detail::field;
using detail::string_field;
using json = nlohmann::json;

// OpenAI request fields Gemini has no equivalent for.
bool is_unsupported_openai_param(std::string_view k) {
  static constexpr std::string_view names[] = {
      "logit_bias", "logprobs",   "top_logprobs", "functions",    "function_call",     "modalities",
      "audio",      "prediction", "service_tier", "store",        "web_search_options", "suffix",
      "echo",       "best_of",    "prompt_cache_key", "safety_identifier", "verbosity", "metadata",
      "parallel_tool_calls", "user", "encoding_format", "dimensions"};
  for (auto n : names) {
    if (n == k) {
      return true;
    }
  }
  return false;
}

// LiteLLM client-side options that are never request fields for a provider.
bool is_client_option(std::string_view k) {
  return k == "extra_headers" || k == "extra_body" || k == "timeout" || k == "stream_timeout" || k == "tags" ||
         k == "guardrails";
}

std::string at(std::size_t i) { return "messages[" + std::to_string(i) + "]"; }

// Gemini 3 signs the function calls it makes (thoughtSignature, beside functionCall in the
// part) and refuses a later request whose call comes back unsigned. An OpenAI client hands
// back only the tool call, so the signature rides in its id, as LiteLLM writes it:
// call_<hex>__thought__<signature>.
constexpr std::string_view thought_separator = "__thought__";

std::string_view signature_in(std::string_view call_id) {
  auto p = call_id.find(thought_separator);
  return p == std::string_view::npos ? std::string_view{} : call_id.substr(p + thought_separator.size());
}

std::string media_type_of_url(std::string_view url) {
  auto q = url.find_first_of("?#");
  if (q != std::string_view::npos) {
    url = url.substr(0, q);
  }
  auto dot = url.rfind('.');
  std::string ext = dot == std::string_view::npos ? std::string() : std::string(url.substr(dot + 1));
  for (auto& c : ext) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  if (ext == "png") {
    return "image/png";
  }
  if (ext == "gif") {
    return "image/gif";
  }
  if (ext == "webp") {
    return "image/webp";
  }
  if (ext == "pdf") {
    return "application/pdf";
  }
  if (ext == "mp4") {
    return "video/mp4";
  }
  if (ext == "mp3") {
    return "audio/mp3";
  }
  if (ext == "wav") {
    return "audio/wav";
  }
  return "image/jpeg";
}

core::result<json> media_part(std::string_view url, const std::string& where) {
  if (auto du = detail::parse_data_url(url)) {
    return detail::ok(json{{"inlineData", {{"mimeType", du->media_type}, {"data", du->data}}}});
  }
  if (url.rfind("http://", 0) == 0 || url.rfind("https://", 0) == 0 || url.rfind("gs://", 0) == 0) {
    return detail::ok(json{{"fileData", {{"mimeType", media_type_of_url(url)}, {"fileUri", url}}}});
  }
  return detail::bad_param(where + ": the URL must be a base64 data URL, an http(s) URL or a gs:// URI", where);
}

// OpenAI message content -> Gemini parts (empty text skipped).
core::result<json> content_parts(const json& content, const std::string& where) {
  json parts = json::array();
  if (content.is_null()) {
    return detail::ok(std::move(parts));
  }
  if (content.is_string()) {
    if (!content.get_ref<const std::string&>().empty()) {
      parts.push_back({{"text", content}});
    }
    return detail::ok(std::move(parts));
  }
  if (!content.is_array()) {
    return detail::bad_param(where + ".content must be a string or a list of content parts", where + ".content");
  }
  for (std::size_t j = 0; j < content.size(); ++j) {
    const json& part = content[j];
    std::string pw = where + ".content[" + std::to_string(j) + "]";
    if (part.is_string()) {
      if (!part.get_ref<const std::string&>().empty()) {
        parts.push_back({{"text", part}});
      }
      continue;
    }
    if (!part.is_object()) {
      return detail::bad_param(pw + " must be an object", pw);
    }
    auto type = string_field(part, "type");
    if (type == "text") {
      if (auto text = string_field(part, "text"); !text.empty()) {
        parts.push_back({{"text", text}});
      }
    } else if (type == "image_url") {
      auto p = media_part(detail::image_url_of(part), pw);
      if (!p) {
        return p.error();
      }
      parts.push_back(std::move(*p));
    } else if (type == "file") {
      const json* f = field(part, "file");
      std::string_view url = f != nullptr ? string_field(*f, "file_data") : std::string_view{};
      if (url.empty() && f != nullptr) {
        url = string_field(*f, "file_id");
      }
      auto p = media_part(url, pw);
      if (!p) {
        return p.error();
      }
      parts.push_back(std::move(*p));
    } else if (type == "input_audio") {
      const json* a = field(part, "input_audio");
      auto data = a != nullptr ? string_field(*a, "data") : std::string_view{};
      auto format = a != nullptr ? string_field(*a, "format") : std::string_view{};
      if (data.empty()) {
        return detail::bad_param(pw + ".input_audio.data is required", pw);
      }
      parts.push_back({{"inlineData", {{"mimeType", "audio/" + std::string(format.empty() ? "wav" : format)},
                                       {"data", data}}}});
    } else {
      return detail::bad_param(pw + ": content part type '" + std::string(type) + "' is not supported for gemini", pw);
    }
  }
  return detail::ok(std::move(parts));
}

void append_turn(json& contents, std::string_view role, json parts) {
  if (parts.empty()) {
    return;
  }
  if (!contents.empty() && contents.back()["role"] == role) {
    auto& p = contents.back()["parts"];
    for (auto& x : parts) {
      p.push_back(std::move(x));
    }
    return;
  }
  contents.push_back({{"role", role}, {"parts", std::move(parts)}});
}

core::result<void> convert_messages(const json& msgs, json& out) {
  if (!msgs.is_array()) {
    return detail::bad_param("messages must be a list", "messages");
  }
  json system_parts = json::array();
  json contents = json::array();
  std::map<std::string, std::string, std::less<>> call_names;  // tool_call id -> function name
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
      auto parts = content_parts(c, where);
      if (!parts) {
        return parts.error();
      }
      for (auto& p : *parts) {
        if (p.contains("text")) {
          system_parts.push_back(std::move(p));
        }
      }
    } else if (role == "user") {
      auto parts = content_parts(c, where);
      if (!parts) {
        return parts.error();
      }
      append_turn(contents, "user", std::move(*parts));
    } else if (role == "assistant") {
      auto parts = content_parts(c, where);
      if (!parts) {
        return parts.error();
      }
      if (const json* calls = field(m, "tool_calls")) {
        if (!calls->is_array()) {
          return detail::bad_param(where + ".tool_calls must be a list", where + ".tool_calls");
        }
        for (std::size_t j = 0; j < calls->size(); ++j) {
          const json& tc = (*calls)[j];
          std::string cw = where + ".tool_calls[" + std::to_string(j) + "]";
          const json* fn = field(tc, "function");
          if (fn == nullptr || !fn->is_object() || string_field(*fn, "name").empty()) {
            return detail::bad_param(cw + ".function.name is required", cw + ".function");
          }
          json args = json::object();
          const json* a = field(*fn, "arguments");
          if (a != nullptr && a->is_string() && !a->get_ref<const std::string&>().empty()) {
            args = detail::parse_bounded(a->get_ref<const std::string&>());
            if (args.is_discarded() || !args.is_object()) {
              return detail::bad_param(cw + ".function.arguments must be a JSON object", cw + ".function.arguments");
            }
          } else if (a != nullptr && a->is_object()) {
            args = *a;
          }
          std::string name(string_field(*fn, "name"));
          auto id = string_field(tc, "id");
          call_names[std::string(id)] = name;
          json part = {{"functionCall", {{"name", name}, {"args", std::move(args)}}}};
          if (auto sig = signature_in(id); !sig.empty()) {
            part["thoughtSignature"] = sig;
          }
          parts->push_back(std::move(part));
        }
      }
      append_turn(contents, "model", std::move(*parts));
    } else if (role == "tool" || role == "function") {
      std::string name(string_field(m, "name"));
      if (role == "tool") {
        auto id = string_field(m, "tool_call_id");
        if (id.empty()) {
          return detail::bad_param(where + ".tool_call_id is required for tool messages", where + ".tool_call_id");
        }
        if (auto it = call_names.find(id); it != call_names.end()) {
          name = it->second;
        }
      }
      if (name.empty()) {
        return detail::bad_param(where + ": no earlier assistant tool call has this tool_call_id (gemini needs the "
                                          "function's name)",
                                 where + ".tool_call_id");
      }
      std::string text = detail::content_text(c);
      json response;
      json parsed = detail::parse_bounded(text);
      if (!parsed.is_discarded() && parsed.is_object()) {
        response = std::move(parsed);
      } else {
        response = {{"content", text}};
      }
      append_turn(contents, "user",
                  json::array({{{"functionResponse", {{"name", name}, {"response", std::move(response)}}}}}));
    } else {
      return detail::bad_param(where + ".role '" + std::string(role) + "' is not a chat role", where + ".role");
    }
  }
  if (contents.empty()) {
    return detail::bad_param("messages must hold at least one user or assistant message for gemini", "messages");
  }
  out["contents"] = std::move(contents);
  if (!system_parts.empty()) {
    out["systemInstruction"] = {{"parts", std::move(system_parts)}};
  }
  return {};
}

// A JSON schema as Gemini's OpenAPI subset takes it: without $schema, additionalProperties
// and strict, and with every reference to the schema's own $defs / definitions replaced by
// the definition (the subset has no references; pydantic writes nested models that way).
// Names under `properties` are property names, never keywords. A reference that does not
// resolve is kept, for Gemini to name; recursion stops at depth 64.
json clean_schema(const json& s, const json* defs, int depth) {
  if (depth > 64 || !s.is_object()) {
    return s;
  }
  if (const json* ref = field(s, "$ref"); ref != nullptr && ref->is_string() && defs != nullptr) {
    std::string_view r = ref->get_ref<const std::string&>();
    for (std::string_view prefix : {"#/$defs/", "#/definitions/"}) {
      if (r.substr(0, prefix.size()) == prefix) {
        if (const json* def = field(*defs, r.substr(prefix.size())); def != nullptr && def->is_object()) {
          json out = clean_schema(*def, defs, depth + 1);
          json beside = s;  // a description beside the $ref wins over the definition's
          beside.erase("$ref");
          const json extra = clean_schema(beside, defs, depth + 1);
          for (auto it = extra.begin(); it != extra.end() && out.is_object(); ++it) {
            out[it.key()] = it.value();
          }
          return out;
        }
      }
    }
  }
  json out = json::object();
  for (auto it = s.begin(); it != s.end(); ++it) {
    const std::string& k = it.key();
    const json& v = it.value();
    if (k == "$schema" || k == "additionalProperties" || k == "strict" || k == "$defs" || k == "definitions") {
      continue;
    }
    if (k == "properties" && v.is_object()) {
      json props = json::object();
      for (auto p = v.begin(); p != v.end(); ++p) {
        props[p.key()] = clean_schema(p.value(), defs, depth + 1);
      }
      out[k] = std::move(props);
    } else if (v.is_array()) {
      json items = json::array();
      for (const auto& x : v) {
        items.push_back(clean_schema(x, defs, depth + 1));
      }
      out[k] = std::move(items);
    } else {
      out[k] = clean_schema(v, defs, depth + 1);
    }
  }
  return out;
}

json clean_schema(const json& s) {
  const json* defs = s.is_object() ? field(s, "$defs") : nullptr;
  if (defs == nullptr && s.is_object()) {
    defs = field(s, "definitions");
  }
  return clean_schema(s, defs != nullptr && defs->is_object() ? defs : nullptr, 0);
}

core::result<json> convert_tools(const json& tools) {
  if (!tools.is_array()) {
    return detail::bad_param("tools must be a list", "tools");
  }
  json decls = json::array();
  json others = json::array();
  for (std::size_t i = 0; i < tools.size(); ++i) {
    const json& t = tools[i];
    std::string where = "tools[" + std::to_string(i) + "]";
    if (!t.is_object()) {
      return detail::bad_param(where + " must be an object", where);
    }
    if (string_field(t, "type") != "function" || field(t, "function") == nullptr) {
      others.push_back(t);  // Gemini's own tools (googleSearch, codeExecution, ...): as sent
      continue;
    }
    const json& fn = t["function"];
    auto name = string_field(fn, "name");
    if (name.empty()) {
      return detail::bad_param(where + ".function.name is required", where + ".function.name");
    }
    json decl = {{"name", name}};
    if (auto desc = string_field(fn, "description"); !desc.empty()) {
      decl["description"] = desc;
    }
    const json* params = field(fn, "parameters");
    if (params != nullptr && params->is_object()) {
      // An object without properties is rejected by Gemini; a function without
      // parameters is written without the member.
      const json* props = field(*params, "properties");
      if (!(string_field(*params, "type") == "object" && (props == nullptr || props->empty()))) {
        decl["parameters"] = clean_schema(*params);
      }
    }
    decls.push_back(std::move(decl));
  }
  json out = json::array();
  if (!decls.empty()) {
    out.push_back({{"functionDeclarations", std::move(decls)}});
  }
  for (auto& o : others) {
    out.push_back(std::move(o));
  }
  return detail::ok(std::move(out));
}

core::result<json> convert_tool_choice(const json& tc) {
  if (tc.is_string()) {
    const auto& s = tc.get_ref<const std::string&>();
    if (s == "auto") {
      return detail::ok(json{{"functionCallingConfig", {{"mode", "AUTO"}}}});
    }
    if (s == "none") {
      return detail::ok(json{{"functionCallingConfig", {{"mode", "NONE"}}}});
    }
    if (s == "required" || s == "any") {
      return detail::ok(json{{"functionCallingConfig", {{"mode", "ANY"}}}});
    }
  } else if (tc.is_object()) {
    const json* fn = field(tc, "function");
    auto name = fn != nullptr ? string_field(*fn, "name") : std::string_view{};
    if (string_field(tc, "type") == "function" && !name.empty()) {
      return detail::ok(
          json{{"functionCallingConfig", {{"mode", "ANY"}, {"allowedFunctionNames", json::array({name})}}}});
    }
  }
  return detail::bad_param("tool_choice must be \"auto\", \"required\", \"none\" or {\"type\": \"function\", "
                           "\"function\": {\"name\": ...}}",
                           "tool_choice");
}

core::result<long long> thinking_budget(const json& effort) {
  auto e = effort.is_string() ? effort.get<std::string>() : std::string();
  if (e == "minimal" || e == "low") {
    return 1024;
  }
  if (e == "medium") {
    return 2048;
  }
  if (e == "high") {
    return 4096;
  }
  if (e == "none") {
    return 0;
  }
  return detail::bad_param("reasoning_effort must be none, minimal, low, medium or high", "reasoning_effort");
}

std::string finish_reason_of(std::string_view r, bool tool_calls) {
  if (r == "MAX_TOKENS") {
    return "length";
  }
  if (r == "SAFETY" || r == "RECITATION" || r == "BLOCKLIST" || r == "PROHIBITED_CONTENT" || r == "SPII" ||
      r == "IMAGE_SAFETY") {
    return "content_filter";
  }
  return tool_calls ? "tool_calls" : "stop";
}

int status_of(std::string_view google_status) {
  if (google_status == "INVALID_ARGUMENT" || google_status == "FAILED_PRECONDITION" ||
      google_status == "OUT_OF_RANGE") {
    return 400;
  }
  if (google_status == "UNAUTHENTICATED") {
    return 401;
  }
  if (google_status == "PERMISSION_DENIED") {
    return 403;
  }
  if (google_status == "NOT_FOUND") {
    return 404;
  }
  if (google_status == "RESOURCE_EXHAUSTED") {
    return 429;
  }
  if (google_status == "UNAVAILABLE") {
    return 503;
  }
  if (google_status == "DEADLINE_EXCEEDED") {
    return 504;
  }
  return 500;
}

struct token_tally {
  long long prompt = 0;
  long long candidates = 0;
  long long thoughts = 0;
  long long cached = 0;
  long long total = 0;
  bool seen = false;
  // usage.prompt_tokens_details.web_search_requests: the Google Search queries the
  // grounding metadata names (LiteLLM's count), only when it names any.
  std::optional<long long> web_search_requests;

  // The counts usageMetadata carries, in this order (plain_usage reads them from bytes).
  static constexpr std::array<std::string_view, 5> keys = {"promptTokenCount", "candidatesTokenCount",
                                                           "thoughtsTokenCount", "cachedContentTokenCount",
                                                           "totalTokenCount"};

  void update(const json& u) {
    set({detail::token_count(u, keys[0]), detail::token_count(u, keys[1]), detail::token_count(u, keys[2]),
         detail::token_count(u, keys[3]), detail::token_count(u, keys[4])});
  }
  void set(const std::array<long long, 5>& counts) {
    seen = true;
    prompt = counts[0];
    candidates = counts[1];
    thoughts = counts[2];
    cached = counts[3];
    total = counts[4];
  }
  long long completion() const { return candidates + thoughts; }
  json to_json() const {
    json u = detail::usage_json(prompt, completion());
    if (total > 0) {
      u["total_tokens"] = std::max(total, prompt + completion());
    }
    u["prompt_tokens_details"] = {{"cached_tokens", cached}};
    if (web_search_requests) {
      u["prompt_tokens_details"]["web_search_requests"] = *web_search_requests;
    }
    u["completion_tokens_details"] = {{"reasoning_tokens", thoughts}};
    return u;
  }
  usage value() const {
    usage u = detail::usage_value(prompt, completion());
    if (total > 0) {
      u.total_tokens = std::max(total, prompt + completion());
    }
    u.cached_tokens = cached;
    u.reasoning_tokens = thoughts;
    return u;
  }
};

std::string new_call_id() { return "call_" + core::random_hex(12); }

// ---- grounding, URL context, safety and citations ------------------------------------
//
// A candidate's groundingMetadata (Google Search grounding), urlContextMetadata,
// safetyRatings and citationMetadata reach the client as LiteLLM hands them on: the
// answer's vertex_ai_grounding_metadata, vertex_ai_url_context_metadata,
// vertex_ai_safety_results (a stream chunk's LiteLLM names vertex_ai_safety_ratings) and
// vertex_ai_citation_metadata, each a list over the candidates, as Google wrote them (a
// list-valued groundingMetadata is flattened in); the grounding supports that point at a
// web source become the message's (the delta's) url_citation annotations; the search
// queries count as usage.prompt_tokens_details.web_search_requests. The members are
// passed on whatever their shape; what the annotations and the count read from them is
// read by kind, and an entry of another shape is skipped, never an error.

// The candidate members handed on (a plain stream event has none of them: the scan leaves
// an event with any of them to the DOM).
constexpr std::array<std::string_view, 4> metadata_members = {"groundingMetadata", "urlContextMetadata",
                                                              "safetyRatings", "citationMetadata"};

bool has_metadata_member(const json& cand) {
  return std::any_of(metadata_members.begin(), metadata_members.end(),
                     [&](std::string_view k) { return field(cand, k) != nullptr; });
}

struct candidate_metadata {
  // null until a candidate has the member (push_back makes the list): an answer without
  // any allocates none of them.
  json grounding;
  json url_context;
  json safety;
  json citation;

  bool empty() const { return grounding.is_null() && url_context.is_null() && safety.is_null() && citation.is_null(); }

  // `cand`'s members appended (a null member is absent, as field() reads it).
  void add(const json& cand) {
    if (const json* g = field(cand, metadata_members[0])) {
      if (g->is_array()) {
        for (const auto& x : *g) {
          grounding.push_back(x);
        }
      } else {
        grounding.push_back(*g);
      }
    }
    if (const json* u = field(cand, metadata_members[1])) {
      url_context.push_back(*u);
    }
    if (const json* s = field(cand, metadata_members[2])) {
      safety.push_back(*s);
    }
    if (const json* c = field(cand, metadata_members[3])) {
      citation.push_back(*c);
    }
  }

  // The non-empty strings of every webSearchQueries list; nullopt when no entry has a
  // non-empty list (LiteLLM then leaves the count out).
  std::optional<long long> web_search_requests() const {
    std::optional<long long> n;
    for (const auto& g : grounding) {
      const json* q = field(g, "webSearchQueries");
      if (q == nullptr || !q->is_array() || q->empty()) {
        continue;
      }
      long long count = n.value_or(0);
      for (const auto& x : *q) {
        if (x.is_string() && !x.get_ref<const std::string&>().empty()) {
          ++count;
        }
      }
      n = count;
    }
    return n;
  }

  void write(json& out, std::string_view safety_name) && {
    const auto list = [](json& x) { return x.is_null() ? json::array() : std::move(x); };
    out["vertex_ai_grounding_metadata"] = list(grounding);
    out["vertex_ai_url_context_metadata"] = list(url_context);
    out[std::string(safety_name)] = list(safety);
    out["vertex_ai_citation_metadata"] = list(citation);
  }
};

// The url_citation annotations of the grounding entries from `from` on (one candidate's):
// a support with a segment's startIndex and endIndex (whole numbers) and a first
// groundingChunkIndices entry that names a groundingChunks entry with `web` (its uri and
// title, "" when not strings), as LiteLLM converts them. Google leaves startIndex out of a
// segment that starts at 0; LiteLLM skips such a support, and so does this.
json annotations_of(const json& grounding, std::size_t from) {
  json out = json::array();
  for (std::size_t i = from; grounding.is_array() && i < grounding.size(); ++i) {
    const json& g = grounding[i];
    const json* chunks = field(g, "groundingChunks");
    const json* supports = field(g, "groundingSupports");
    if (chunks == nullptr || !chunks->is_array() || supports == nullptr || !supports->is_array()) {
      continue;
    }
    for (const auto& s : *supports) {
      const json* seg = field(s, "segment");
      const json* start = seg != nullptr ? field(*seg, "startIndex") : nullptr;
      const json* end = seg != nullptr ? field(*seg, "endIndex") : nullptr;
      const json* indices = field(s, "groundingChunkIndices");
      if (start == nullptr || !start->is_number_integer() || end == nullptr || !end->is_number_integer() ||
          indices == nullptr || !indices->is_array() || indices->empty()) {
        continue;
      }
      const json& first = indices->front();
      if (!first.is_number_integer() || first.get<long long>() < 0 ||
          first.get<long long>() >= static_cast<long long>(chunks->size())) {
        continue;
      }
      const json* web = field((*chunks)[first.get<std::size_t>()], "web");
      if (web == nullptr || !web->is_object()) {
        continue;
      }
      out.push_back({{"type", "url_citation"},
                     {"url_citation",
                      {{"start_index", *start},
                       {"end_index", *end},
                       {"url", string_field(*web, "uri")},
                       {"title", string_field(*web, "title")}}}});
    }
  }
  return out;
}

// The OpenAI id of a functionCall part: a new one, carrying the part's signature if any.
std::string call_id_of(const json& part) {
  std::string id = new_call_id();
  if (auto sig = string_field(part, "thoughtSignature"); !sig.empty()) {
    id += thought_separator;
    id += sig;
  }
  return id;
}

// The block reason of a prompt the provider refused to answer, empty if none.
std::string_view block_reason(const json& j) {
  const json* pf = field(j, "promptFeedback");
  return pf != nullptr ? string_field(*pf, "blockReason") : std::string_view{};
}

// The most candidates a stream is read with (each is a choice with its state).
constexpr int gemini_max_candidates = 64;

core::error error_event(const json& j, std::string_view label) {
  const json* e = field(j, "error");
  int status = 500;
  if (e != nullptr) {
    if (const json* code = field(*e, "code"); code != nullptr && code->is_number_integer()) {
      status = code->get<int>();
    } else {
      status = status_of(string_field(*e, "status"));
    }
  }
  if (status < 400 || status > 599) {
    status = 500;
  }
  return upstream_error(status, detail::dump(j), label);
}

// ---- plain stream events, without a DOM ----------------------------------------------
//
// Nearly every event of a streamed answer is one candidate with a text part or a few, the
// last with its finishReason, and usageMetadata, modelVersion and responseId beside it.
// Those are read from a scan of the event's bytes (scan_json validates it as the DOM's
// parser would, then a walk over the valid text finds the members), without the DOM that
// was most of the translation's cost; the chunks are written by the same chunk_writer calls
// with the same decoded text, so they are the very bytes of the DOM path. The reading
// takes only what it can vouch for: an error, a promptFeedback, several (or no) candidates,
// a part that is not plain text (functionCall, thought, inlineData, ...), a member the DOM
// reads in a kind other than the plain one (a null, a fraction, a string index ...), a
// duplicate of such a member or a key written with an escape below the top level leave the
// whole event to the DOM, before anything is changed, and so does a candidate with any
// of the metadata the client is handed (groundingMetadata, urlContextMetadata,
// safetyRatings, citationMetadata: rare, and written by the DOM path alone). Members the
// DOM path ignores (avgLogprobs, a part's thoughtSignature beside its text, a content's
// role ...) are ignored here too.

using detail::each_item;
using detail::each_member;
using detail::kind_of;
using detail::next_kind;
using detail::plain_unsigned;
using detail::text_of;
using detail::valid_json_walk;

// What the scanning reader found in a plain event (literals as written, with their quotes).
struct plain_event_reading {
  std::string_view response_id;
  bool has_usage = false;
  std::array<long long, 5> counts{};
  bool has_candidate = false;
  int index = 0;
  std::vector<std::string_view> texts;  // the text parts' literals, in order
  std::string_view finish_reason;

  void clear() {
    response_id = {};
    has_usage = false;
    counts = {};
    has_candidate = false;
    index = 0;
    texts.clear();
    finish_reason = {};
  }
};

// usageMetadata's counts: each a plain whole number or null (0, as token_count reads it);
// anything else (a fraction, a negative, a duplicate) is left to the DOM.
bool plain_usage(std::string_view object, std::array<long long, 5>& counts) {
  std::array<bool, 5> seen{};
  return each_member(object, [&](std::string_view key, valid_json_walk& w) {
    for (std::size_t k = 0; k < token_tally::keys.size(); ++k) {
      if (key != token_tally::keys[k]) {
        continue;
      }
      if (seen[k]) {
        return false;
      }
      seen[k] = true;
      const std::string_view value = w.value();
      const json_kind kind = kind_of(value);
      if (kind == json_kind::null) {
        counts[k] = 0;
        return true;
      }
      auto u = kind == json_kind::number ? plain_unsigned(value) : std::nullopt;
      if (!u) {
        return false;
      }
      counts[k] = *u > static_cast<std::uint64_t>(core::max_count) ? core::max_count : static_cast<long long>(*u);
      return true;
    }
    return true;  // promptTokensDetails, toolUsePromptTokenCount, ...: not read
  });
}

// One part: {"text": "..."}, perhaps with its thoughtSignature. A part without text adds
// nothing (as in the DOM path); any other member (functionCall, thought, inlineData, ...)
// is left to the DOM.
bool plain_part(valid_json_walk& w, std::vector<std::string_view>& texts) {
  bool has_text = false;
  bool has_signature = false;
  return each_member(w, [&](std::string_view key, valid_json_walk& v) {
    if (key == "text" && !has_text && next_kind(v) == json_kind::string) {
      has_text = true;
      texts.push_back(v.value());
      return true;
    }
    if (key == "thoughtSignature" && !has_signature && next_kind(v) == json_kind::string) {
      has_signature = true;
      return true;
    }
    return false;
  });
}

// The candidate: its index, its content's parts and its finishReason.
bool plain_candidate(valid_json_walk& w, plain_event_reading& r) {
  bool has_index = false;
  bool has_content = false;
  bool has_finish = false;
  return each_member(w, [&](std::string_view key, valid_json_walk& v) {
    const json_kind kind = next_kind(v);
    if (key == "index") {
      auto u = kind == json_kind::number && !has_index ? plain_unsigned(v.value()) : std::nullopt;
      if (!u || *u >= static_cast<std::uint64_t>(gemini_max_candidates)) {
        return false;
      }
      has_index = true;
      r.index = static_cast<int>(*u);
      return true;
    }
    if (key == "content") {
      if (has_content || kind != json_kind::object) {
        return false;
      }
      has_content = true;
      bool has_parts = false;
      return each_member(v, [&](std::string_view ckey, valid_json_walk& c) {
        if (ckey != "parts") {
          return true;  // role: not read
        }
        if (has_parts || next_kind(c) != json_kind::array) {
          return false;
        }
        has_parts = true;
        return each_item(c, [&](valid_json_walk& p) {
          return next_kind(p) == json_kind::object && plain_part(p, r.texts);
        });
      });
    }
    if (key == "finishReason") {
      if (has_finish || kind != json_kind::string) {
        return false;
      }
      has_finish = true;
      r.finish_reason = v.value();
      return true;
    }
    // groundingMetadata, urlContextMetadata, safetyRatings, citationMetadata: handed on by
    // the DOM reading; avgLogprobs, ...: not read.
    return std::find(metadata_members.begin(), metadata_members.end(), key) == metadata_members.end();
  });
}

// The whole event, from its top-level members (scan_json's list).
bool read_plain_event(const json_scan& scan, plain_event_reading& r) {
  bool has_candidates = false;
  bool has_id = false;
  for (const auto& m : scan.members) {
    if (m.key == "error" || m.key == "promptFeedback") {
      return false;
    }
    if (m.key == "candidates") {
      if (has_candidates || m.kind != json_kind::array) {
        return false;
      }
      has_candidates = true;
      int count = 0;
      valid_json_walk w{m.value};
      if (!each_item(w, [&](valid_json_walk& c) {
            return ++count == 1 && next_kind(c) == json_kind::object && plain_candidate(c, r);
          }) ||
          count != 1) {
        return false;  // several candidates, or none
      }
      r.has_candidate = true;
    } else if (m.key == "usageMetadata") {
      if (r.has_usage || m.kind != json_kind::object || !plain_usage(m.value, r.counts)) {
        return false;
      }
      r.has_usage = true;
    } else if (m.key == "responseId") {
      if (has_id || m.kind != json_kind::string) {
        return false;
      }
      has_id = true;
      r.response_id = m.value;
    }
    // modelVersion, createTime, ...: not read
  }
  return true;
}

class gemini_stream final : public stream_translator {
 public:
  gemini_stream(std::string_view model, bool include_usage, std::string_view label, stream_reading reading)
      : writer_("chatcmpl-" + core::uuid4(), detail::unix_now(), std::string(model), false),
        include_usage_(include_usage),
        label_(label),
        reading_(reading) {}

  core::result<void> feed(std::string_view bytes, std::vector<std::string>& payloads) override {
    if (failure_) {
      return *failure_;
    }
    events_.clear();
    parser_.feed(bytes, events_);
    for (auto& ev : events_) {
      core::result<void> r;
      try {
        r = on_event(ev.data, payloads);
      } catch (const json::exception&) {
        r = detail::malformed_upstream(label_, "the provider sent a stream event this gateway cannot read");
      }
      if (!r) {
        failure_ = r.error();
        return r;
      }
    }
    if (parser_.pending() > detail::max_pending_stream_bytes) {
      failure_ = detail::malformed_upstream(label_, "the provider sent an oversized stream event");
      return *failure_;
    }
    return {};
  }

  core::result<void> finish(std::vector<std::string>& payloads) override {
    if (failure_) {
      return *failure_;
    }
    if (!finished_) {
      failure_ = core::make_error(core::errc::upstream_error,
                                  std::string(label_) + " - stream ended before a finishReason (stream cut)");
      return *failure_;
    }
    if (include_usage_) {
      writer_.usage_chunk(tally_.to_json(), payloads);
    }
    return {};
  }

  const usage& tokens() const override { return usage_; }

 private:
  core::result<void> on_event(std::string_view data, std::vector<std::string>& out) {
    if (data.find_first_not_of(" \t\r\n") == std::string_view::npos) {
      return {};
    }
    if (!reading_.dom_only && plain_event(data, out)) {
      if (reading_.scanned != nullptr) {
        ++*reading_.scanned;
      }
      return {};
    }
    json j = detail::parse_bounded(data);
    if (j.is_discarded() || !j.is_object()) {
      return detail::malformed_upstream(label_, "the provider sent a stream event that is not valid JSON");
    }
    if (field(j, "error") != nullptr) {
      return error_event(j, label_);
    }
    if (finished_ && field(j, "candidates") == nullptr) {
      // Gemini sends usage (and nothing else) after the finishing chunk on some models.
      if (const json* u = field(j, "usageMetadata")) {
        track(*u);
      }
      return {};
    }
    if (auto id = string_field(j, "responseId"); !id.empty() && !started_) {
      writer_.set_id(std::string(id));
    }
    if (const json* u = field(j, "usageMetadata")) {
      track(*u);
    }
    if (!block_reason(j).empty()) {
      if (!finished_) {
        auto& c = choice(0);
        start(0, c, out);
        writer_.finish("content_filter", out);
        c.finished = true;
        finished_ = true;
      }
      return {};
    }
    const json* cands = field(j, "candidates");
    if (cands == nullptr) {
      return {};  // a usage-only chunk
    }
    if (!cands->is_array()) {
      return detail::malformed_upstream(label_, "the provider sent candidates that are not a list");
    }
    // With n > 1 (candidateCount) every candidate streams as its own choice, with its index
    // (the candidate's own, else its place in the list), as LiteLLM streams them.
    std::optional<candidate_metadata> metadata;  // the event's, when a candidate has a member
    std::size_t metadata_chunk = 0;  // the chunk that carries them: the first candidate with one, its first
    for (std::size_t pos = 0; pos < cands->size(); ++pos) {
      const json& cand = (*cands)[pos];
      int index = static_cast<int>(pos);
      if (const json* i = field(cand, "index"); i != nullptr && i->is_number_integer() && i->get<long long>() >= 0 &&
                                                i->get<long long>() < max_candidates) {
        index = i->get<int>();
      }
      if (index >= max_candidates) {
        return detail::malformed_upstream(label_, "the provider sent more candidates than this gateway streams");
      }
      auto& c = choice(index);
      if (c.finished) {
        continue;  // nothing may follow a choice's finish_reason
      }
      const std::size_t first_chunk = out.size();
      if (const json* content = field(cand, "content")) {
        if (const json* parts = field(*content, "parts"); parts != nullptr && parts->is_array()) {
          for (const auto& p : *parts) {
            if (const json* fc = field(p, "functionCall")) {
              const json* args = field(*fc, "args");
              start(index, c, out);
              writer_.tool_call(c.tool_count++, call_id_of(p), string_field(*fc, "name"),
                                args != nullptr ? detail::dump(*args) : "{}", out);
            } else if (auto text = string_field(p, "text"); !text.empty()) {
              start(index, c, out);
              const json* thought = field(p, "thought");
              if (thought != nullptr && thought->is_boolean() && thought->get<bool>()) {
                writer_.reasoning(text, out);
              } else {
                writer_.content(text, out);
              }
            }
          }
        }
      }
      const bool finishes = !string_field(cand, "finishReason").empty();
      json annotations;
      if (has_metadata_member(cand)) {
        // The candidate's metadata rides on its first chunk of this event (its finish chunk
        // at the latest: nothing of it may follow that); a chunk is written for it if the
        // candidate has nothing else to say here.
        if (out.size() == first_chunk && !finishes) {
          start(index, c, out);
          if (out.size() == first_chunk) {
            writer_.content("", out);
          }
        }
        if (!metadata) {
          metadata.emplace();
          metadata_chunk = first_chunk;
        }
        const std::size_t grounding_from = metadata->grounding.size();
        metadata->add(cand);
        annotations = annotations_of(metadata->grounding, grounding_from);
      }
      if (finishes) {
        start(index, c, out);
        writer_.finish(finish_reason_of(string_field(cand, "finishReason"), c.tool_count > 0), out);
        c.finished = true;
      }
      if (!annotations.empty()) {
        add_to_chunk(out[first_chunk], [&](json& chunk) {
          chunk["choices"][0]["delta"]["annotations"] = std::move(annotations);
        });
      }
    }
    if (metadata) {
      // LiteLLM's chunk carries the four lists (empty or not) on every chunk; here only the
      // chunk of an event that has any of the members does, so that a plain answer does not
      // pay for four empty lists in every chunk.
      if (auto n = metadata->web_search_requests()) {
        tally_.web_search_requests = n;
      }
      add_to_chunk(out[metadata_chunk],
                   [&](json& chunk) { std::move(*metadata).write(chunk, "vertex_ai_safety_ratings"); });
    }
    // The answer is complete once every choice that began has finished.
    finished_ = !choices_.empty() && std::all_of(choices_.begin(), choices_.end(), [](const auto& kv) {
      return kv.second.finished;
    });
    return {};
  }

  // A plain event (see read_plain_event) translated as on_event's DOM reading translates
  // it. False, and nothing changed, for any other event.
  bool plain_event(std::string_view data, std::vector<std::string>& out) {
    if (!scan_json(data, scan_, max_json_depth) || scan_.root != json_kind::object) {
      return false;
    }
    plain_.clear();
    if (!read_plain_event(scan_, plain_)) {
      return false;
    }
    if (finished_ && !plain_.has_candidate) {
      if (plain_.has_usage) {
        track(plain_.counts);
      }
      return true;
    }
    if (!plain_.response_id.empty() && !started_) {
      if (auto id = text_of(plain_.response_id, decoded_); !id.empty()) {
        writer_.set_id(std::string(id));
      }
    }
    if (plain_.has_usage) {
      track(plain_.counts);
    }
    if (!plain_.has_candidate) {
      return true;  // a usage-only chunk
    }
    const int index = plain_.index;
    auto& c = choice(index);
    if (!c.finished) {
      for (auto literal : plain_.texts) {
        if (auto text = text_of(literal, decoded_); !text.empty()) {
          start(index, c, out);
          writer_.content(text, out);
        }
      }
      if (!plain_.finish_reason.empty()) {
        if (auto fr = text_of(plain_.finish_reason, decoded_); !fr.empty()) {
          start(index, c, out);
          writer_.finish(finish_reason_of(fr, c.tool_count > 0), out);
          c.finished = true;
        }
      }
    }
    finished_ = !choices_.empty() && std::all_of(choices_.begin(), choices_.end(), [](const auto& kv) {
      return kv.second.finished;
    });
    return true;
  }

  // Members added to a chunk the writer wrote (rare: only events with grounding or safety
  // metadata), in the writer's byte form (nlohmann's dump, keys sorted).
  template <typename Change>
  static void add_to_chunk(std::string& chunk, Change&& change) {
    json j = json::parse(chunk);
    change(j);
    chunk = detail::dump(j);
  }

  // One streamed choice (a candidate).
  struct choice_state {
    int tool_count = 0;
    bool started = false;
    bool finished = false;
  };
  // Bounds the per-choice state a provider can make this gateway keep.
  static constexpr int max_candidates = gemini_max_candidates;

  choice_state& choice(int index) { return choices_[index]; }

  void track(const json& u) {
    tally_.update(u);
    usage_ = tally_.value();
  }
  void track(const std::array<long long, 5>& counts) {
    tally_.set(counts);
    usage_ = tally_.value();
  }

  // A choice's role chunk goes out with the first thing of it the client can see: a
  // stream that fails before any (no candidates, cut early) then fails with a real HTTP
  // status. Selects the choice the next chunks belong to.
  void start(int index, choice_state& c, std::vector<std::string>& out) {
    writer_.set_index(index);
    if (!c.started) {
      c.started = true;
      started_ = true;
      writer_.role(out);
    }
  }

  detail::chunk_writer writer_;
  bool include_usage_;
  std::string_view label_;
  stream_reading reading_;
  json_scan scan_;  // plain events' scans and readings, reused across events
  plain_event_reading plain_;
  std::string decoded_;
  upstream::sse_parser parser_;
  std::vector<upstream::sse_parser::event> events_;
  token_tally tally_;
  usage usage_;
  std::optional<core::error> failure_;
  std::map<int, choice_state> choices_;
  bool started_ = false;
  bool finished_ = false;
};

}  // namespace

core::result<json> chat_body(const config::deployment& d, const json& body, const build_options& opts,
                             std::string_view provider) {
  if (!body.is_object()) {
    return detail::bad_param("the request body must be a JSON object", "");
  }
  json out = json::object();
  const json* msgs = field(body, "messages");
  if (msgs == nullptr) {
    return detail::bad_param("messages is required", "messages");
  }
  if (auto r = convert_messages(*msgs, out); !r) {
    return r.error();
  }
  json gen = json::object();
  std::optional<long long> max_tokens;
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
      if (k == "max_completion_tokens" || !max_tokens) {
        max_tokens = v.get<long long>();
      }
    } else if (k == "temperature") {
      gen["temperature"] = v;
    } else if (k == "top_p") {
      gen["topP"] = v;
    } else if (k == "top_k") {
      gen["topK"] = v;
    } else if (k == "n") {
      gen["candidateCount"] = v;
    } else if (k == "seed") {
      gen["seed"] = v;
    } else if (k == "presence_penalty") {
      gen["presencePenalty"] = v;
    } else if (k == "frequency_penalty") {
      gen["frequencyPenalty"] = v;
    } else if (k == "stop") {
      json seqs = json::array();
      for (auto& s : detail::stop_list(v)) {
        seqs.push_back(std::move(s));
      }
      if (!seqs.empty()) {
        gen["stopSequences"] = std::move(seqs);
      }
    } else if (k == "response_format") {
      auto type = string_field(v, "type");
      if (type == "json_object") {
        gen["responseMimeType"] = "application/json";
      } else if (type == "json_schema") {
        gen["responseMimeType"] = "application/json";
        const json* js = field(v, "json_schema");
        const json* s = js != nullptr ? field(*js, "schema") : nullptr;
        if (s != nullptr && s->is_object()) {
          gen["responseSchema"] = clean_schema(*s);
        }
      } else if (type != "text") {
        return detail::bad_param("response_format.type must be text, json_object or json_schema", "response_format");
      }
    } else if (k == "reasoning_effort") {
      auto b = thinking_budget(v);
      if (!b) {
        return b.error();
      }
      gen["thinkingConfig"] = {{"thinkingBudget", *b}};
    } else if (k == "tools") {
      auto t = convert_tools(v);
      if (!t) {
        return t.error();
      }
      if (!t->empty()) {
        out["tools"] = std::move(*t);
      }
    } else if (k == "tool_choice") {
      auto tc = convert_tool_choice(v);
      if (!tc) {
        return tc.error();
      }
      out["toolConfig"] = std::move(*tc);
    } else if (k == "safety_settings") {
      out["safetySettings"] = v;
    } else if (k == "generationConfig" && v.is_object()) {
      for (auto g = v.begin(); g != v.end(); ++g) {
        if (!gen.contains(g.key())) {
          gen[g.key()] = g.value();
        }
      }
    } else if (is_unsupported_openai_param(k)) {
      if (detail::is_noop_value(k, v) || opts.drop_params || k == "user" || k == "parallel_tool_calls" ||
          k == "metadata") {
        continue;  // `user`, `metadata` and parallel_tool_calls change nothing Gemini answers
      }
      return detail::unsupported_param(provider, k, d);
    } else {
      out[k] = v;  // Gemini's own fields (safetySettings, cachedContent, labels, ...), as sent
    }
  }
  if (max_tokens) {
    gen["maxOutputTokens"] = *max_tokens;
  }
  if (!gen.empty()) {
    out["generationConfig"] = std::move(gen);
  }
  return detail::ok(std::move(out));
}

core::result<translated_response> chat_response(std::string_view body, std::string_view model,
                                                std::string_view label) {
  json j = detail::parse_bounded(body);
  if (j.is_discarded() || !j.is_object()) {
    return detail::malformed_upstream(label, "the provider returned a response that is not valid JSON");
  }
  if (field(j, "error") != nullptr) {
    return error_event(j, label);
  }
  token_tally tally;
  const json* u = field(j, "usageMetadata");
  if (u != nullptr) {
    tally.update(*u);
  }
  std::string id(string_field(j, "responseId"));
  if (id.empty()) {
    id = "chatcmpl-" + core::uuid4();
  }
  json out = {{"id", id}, {"object", "chat.completion"}, {"created", detail::unix_now()}, {"model", model}};
  json choices = json::array();
  candidate_metadata metadata;
  const json* cands = field(j, "candidates");
  if (!block_reason(j).empty()) {
    choices.push_back({{"index", 0},
                       {"finish_reason", "content_filter"},
                       {"logprobs", nullptr},
                       {"message", {{"role", "assistant"}, {"content", nullptr}}}});
  } else if (cands == nullptr || !cands->is_array() || cands->empty()) {
    return detail::malformed_upstream(label, "the provider returned no candidates (and no block reason)");
  } else {
    for (std::size_t i = 0; i < cands->size(); ++i) {
      const json& cand = (*cands)[i];
      std::string text;
      std::string reasoning;
      json tool_calls = json::array();
      const json* content = field(cand, "content");
      const json* parts = content != nullptr ? field(*content, "parts") : nullptr;
      if (parts != nullptr && parts->is_array()) {
        for (const auto& p : *parts) {
          if (const json* fc = field(p, "functionCall")) {
            const json* args = field(*fc, "args");
            tool_calls.push_back(
                {{"id", call_id_of(p)},
                 {"type", "function"},
                 {"function",
                  {{"name", string_field(*fc, "name")}, {"arguments", args != nullptr ? detail::dump(*args) : "{}"}}}});
          } else if (auto t = string_field(p, "text"); !t.empty()) {
            const json* thought = field(p, "thought");
            (thought != nullptr && thought->is_boolean() && thought->get<bool>() ? reasoning : text) += t;
          }
        }
      }
      json msg = {{"role", "assistant"}};
      msg["content"] = (text.empty() && (!tool_calls.empty() || parts == nullptr)) ? json(nullptr) : json(text);
      if (!reasoning.empty()) {
        msg["reasoning_content"] = reasoning;
      }
      if (!tool_calls.empty()) {
        msg["tool_calls"] = tool_calls;
      }
      const std::size_t grounding_from = metadata.grounding.size();
      metadata.add(cand);
      if (metadata.grounding.size() > grounding_from) {
        if (json annotations = annotations_of(metadata.grounding, grounding_from); !annotations.empty()) {
          msg["annotations"] = std::move(annotations);
        }
      }
      choices.push_back({{"index", i},
                         {"finish_reason", finish_reason_of(string_field(cand, "finishReason"), !tool_calls.empty())},
                         {"logprobs", nullptr},
                         {"message", std::move(msg)}});
    }
  }
  out["choices"] = std::move(choices);
  tally.web_search_requests = metadata.web_search_requests();
  out["usage"] = tally.to_json();
  // LiteLLM sets the four lists on every Gemini answer, empty when no candidate has the
  // member, and clients read them without checking: here too.
  translated_response r;
  if (metadata.empty()) {
    // The usual answer: the four empty lists appended as the DOM would dump them (its keys
    // are sorted and these sort after every other member), without four more members to
    // build and dump.
    r.body = detail::dump(out);
    r.body.pop_back();
    r.body += R"(,"vertex_ai_citation_metadata":[],"vertex_ai_grounding_metadata":[],)"
              R"("vertex_ai_safety_results":[],"vertex_ai_url_context_metadata":[]})";
  } else {
    std::move(metadata).write(out, "vertex_ai_safety_results");
    r.body = detail::dump(out);
  }
  if (u != nullptr) {
    r.tokens = tally.value();
  }
  return r;
}

std::unique_ptr<stream_translator> chat_stream(std::string_view model, bool include_usage, std::string_view label,
                                               stream_reading reading) {
  return std::make_unique<gemini_stream>(model, include_usage, label, reading);
}

core::error error_of(int status, std::string_view body, std::string_view label) {
  return upstream_error(status, body, label);
}

}  // namespace gemini_format

namespace {

using detail::field;
using detail::string_field;
using json = nlohmann::json;

constexpr std::string_view label = "GeminiException";

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// An api_base that names the model itself (a proxy's URL, LiteLLM's custom-proxy form).
bool base_names_model(const config::deployment& d) {
  return detail::base_of(d).find("/models/") != std::string::npos;
}

// {base}/v1beta/models/{model} (the base as configured, with or without /v1beta), or the
// api_base itself when it names the model.
std::string model_url(const config::deployment& d) {
  std::string base = detail::base_of(d);
  if (base_names_model(d)) {
    return base;
  }
  if (!ends_with(base, "/v1beta") && !ends_with(base, "/v1")) {
    base += "/v1beta";
  }
  std::string_view model = d.upstream_model;
  if (model.rfind("models/", 0) == 0) {
    model.remove_prefix(7);
  }
  return base + "/models/" + std::string(model);
}

// The call to {model_url}:{method}, with the key and, streaming, alt=sse.
upstream_call call_to(const config::deployment& d, std::string_view method, bool stream = false) {
  upstream_call call;
  call.url = model_url(d) + ":" + std::string(method);
  const bool proxy = base_names_model(d);
  char sep = '?';
  if (!d.api_key.empty() && !proxy) {
    call.url += "?key=" + core::percent_encode(d.api_key);
    sep = '&';
  }
  if (stream) {
    call.url += sep;
    call.url += "alt=sse";
  }
  if (!d.api_key.empty() && proxy) {
    call.headers.emplace_back("authorization", "Bearer " + d.api_key);
  }
  call.headers.emplace_back("content-type", "application/json");
  for (const auto& [k, v] : d.extra_headers) {
    call.headers.emplace_back(k, v);
  }
  return call;
}

core::result<upstream_call> embedding_call(const config::deployment& d, const json& body) {
  const json* input = field(body, "input");
  std::string model_name = "models/" + d.upstream_model;
  json dims;
  if (const json* dm = field(body, "dimensions"); dm != nullptr && dm->is_number_integer()) {
    dims = *dm;
  }
  auto request_of = [&](const json& text) {
    json r = {{"model", model_name}, {"content", {{"parts", json::array({{{"text", text}}})}}}};
    if (!dims.is_null()) {
      r["outputDimensionality"] = dims;
    }
    return r;
  };
  if (input != nullptr && input->is_string()) {
    auto call = call_to(d, "embedContent");
    call.body = detail::dump(request_of(*input));
    return call;
  }
  if (input == nullptr || !input->is_array() || input->empty()) {
    return detail::bad_param("input must be a string or a non-empty list of strings", "input");
  }
  json requests = json::array();
  for (const auto& item : *input) {
    if (!item.is_string()) {
      return detail::bad_param("gemini embeddings take text input (strings), not token arrays", "input");
    }
    requests.push_back(request_of(item));
  }
  auto call = call_to(d, "batchEmbedContents");
  call.body = detail::dump(json{{"requests", std::move(requests)}});
  return call;
}

core::result<translated_response> embedding_response(std::string_view body, std::string_view model) {
  json j = detail::parse_bounded(body);
  if (j.is_discarded() || !j.is_object()) {
    return detail::malformed_upstream(label, "the provider returned a response that is not valid JSON");
  }
  json data = json::array();
  auto add = [&](const json& e) -> bool {
    const json* values = field(e, "values");
    if (values == nullptr || !values->is_array()) {
      return false;
    }
    data.push_back({{"object", "embedding"}, {"index", data.size()}, {"embedding", *values}});
    return true;
  };
  if (const json* one = field(j, "embedding")) {
    if (!add(*one)) {
      return detail::malformed_upstream(label, "the provider's embedding has no values");
    }
  } else if (const json* many = field(j, "embeddings"); many != nullptr && many->is_array()) {
    for (const auto& e : *many) {
      if (!add(e)) {
        return detail::malformed_upstream(label, "an embedding of the provider's answer has no values");
      }
    }
  } else {
    return detail::malformed_upstream(label, "the provider's answer has no embedding");
  }
  // Google's embedding answers carry no token counts.
  json out = {{"object", "list"},
              {"data", std::move(data)},
              {"model", model},
              {"usage", {{"prompt_tokens", 0}, {"total_tokens", 0}}}};
  translated_response r;
  r.body = detail::dump(out);
  return r;
}

class gemini final : public adapter {
 public:
  core::result<upstream_call> build(call_type type, const config::deployment& d, const json& body,
                                    const build_options& opts) const override {
    try {
      // The deployment's request defaults and drop lists first, so that a default is
      // translated like the client's own member (max_tokens -> maxOutputTokens).
      json storage;
      const json& in = detail::with_deployment_params(type, d, body, storage);
      if (type == call_type::embedding) {
        return embedding_call(d, in);
      }
      if (type == call_type::completion) {
        return core::make_error(core::errc::bad_request, "gemini does not support /v1/completions; use chat",
                                "model");
      }
      auto out = gemini_format::chat_body(d, in, opts, "gemini");
      if (!out) {
        return out.error();
      }
      auto call = call_to(d, opts.stream ? "streamGenerateContent" : "generateContent", opts.stream);
      call.body = detail::dump(*out);
      return call;
    } catch (const json::exception& e) {
      return detail::bad_param(std::string("could not translate the request for gemini: ") + e.what(), "");
    }
  }

  core::result<translated_response> translate_response(call_type type, const config::deployment&,
                                                       std::string_view body,
                                                       std::string_view model) const override {
    try {
      if (type == call_type::embedding) {
        return embedding_response(body, model);
      }
      return gemini_format::chat_response(body, model, label);
    } catch (const json::exception& e) {
      return detail::malformed_upstream(label, std::string("unreadable response: ") + e.what());
    }
  }

  std::unique_ptr<stream_translator> make_stream(call_type, const config::deployment&, std::string_view model,
                                                 bool include_usage) const override {
    return gemini_format::chat_stream(model, include_usage, label);
  }

  core::error translate_error(const config::deployment&, int status, std::string_view body) const override {
    return gemini_format::error_of(status, body, label);
  }
};

}  // namespace

const adapter& gemini_adapter() {
  static const gemini a;
  return a;
}

}  // namespace switchyard::providers
