// The Vertex AI adapter (`vertex_ai/<model>`): Gemini models in Google's generateContent
// format (gemini_format.hpp) on
//   {base}/v1/projects/{project}/locations/{location}/publishers/google/models/{model}:generateContent
// (:streamGenerateContent?alt=sse when streaming), and Anthropic's models
// (`vertex_ai/claude-*`) as an Anthropic Messages body without "model" and with
// anthropic_version "vertex-2023-10-16" on .../publishers/anthropic/models/{model}:rawPredict
// (:streamRawPredict), answered in Anthropic's format (read by the Anthropic adapter).
//
// {base} is api_base when set, else https://{location}-aiplatform.googleapis.com
// (https://aiplatform.googleapis.com for location "global"). An api_base that names the
// model (".../models/<model>", a proxy's URL) is used as LiteLLM uses it: {api_base}:{method}. The project is
// vertex_project, else the project_id of an inline vertex_credentials, else VERTEXAI_PROJECT
// or GOOGLE_CLOUD_PROJECT; the location vertex_location, else VERTEXAI_LOCATION, else
// us-central1 (LiteLLM's default).
//
// Auth: the service account's OAuth2 access token, which the pipeline fetches and keeps
// fresh (pipeline/token_broker.hpp) and hands over as build_options::bearer_token; without
// one, an api_key is sent as x-goog-api-key (Vertex's API-key mode).
#include "gemini_format.hpp"

#include "adapter_util.hpp"

#include <cstdlib>

namespace switchyard::providers {

namespace {

using detail::field;
using detail::string_field;
using json = nlohmann::json;

constexpr std::string_view label = "VertexAIException";

bool is_claude(const config::deployment& d) { return d.upstream_model.rfind("claude", 0) == 0; }

std::string env_or(const char* name, std::string fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::string(v) : fallback;
}

std::string param(const config::deployment& d, std::string_view key) {
  return std::string(string_field(d.litellm_params, key));
}

std::string project_of(const config::deployment& d) {
  if (auto p = param(d, "vertex_project"); !p.empty()) {
    return p;
  }
  if (const json* creds = field(d.litellm_params, "vertex_credentials")) {
    json sa = creds->is_string() ? detail::parse_bounded(creds->get_ref<const std::string&>()) : *creds;
    if (!sa.is_discarded()) {
      if (auto p = string_field(sa, "project_id"); !p.empty()) {
        return std::string(p);
      }
    }
  }
  return env_or("VERTEXAI_PROJECT", env_or("GOOGLE_CLOUD_PROJECT", ""));
}

std::string location_of(const config::deployment& d) {
  if (auto l = param(d, "vertex_location"); !l.empty()) {
    return l;
  }
  return env_or("VERTEXAI_LOCATION", "us-central1");
}

core::result<std::string> model_url(const config::deployment& d, std::string_view publisher, std::string_view method) {
  std::string base = detail::base_of(d);
  if (base.find("/models/") != std::string::npos) {
    // An api_base that names the model (a proxy's URL): {api_base}:{method}, as LiteLLM.
    return base + ":" + std::string(method);
  }
  const std::string project = project_of(d);
  if (project.empty()) {
    return core::make_error(core::errc::bad_request,
                            "vertex_ai deployment '" + d.model_name +
                                "' has no project: set vertex_project (or VERTEXAI_PROJECT), or give vertex_credentials "
                                "with a project_id",
                            "vertex_project");
  }
  const std::string location = location_of(d);
  if (base.empty()) {
    base = location == "global" ? "https://aiplatform.googleapis.com" : "https://" + location + "-aiplatform.googleapis.com";
  }
  return base + "/v1/projects/" + project + "/locations/" + location + "/publishers/" + std::string(publisher) +
         "/models/" + d.upstream_model + ":" + std::string(method);
}

upstream_call call_to(const config::deployment& d, std::string url, const build_options& opts) {
  upstream_call call;
  call.url = std::move(url);
  if (!opts.bearer_token.empty()) {
    call.headers.emplace_back("authorization", "Bearer " + std::string(opts.bearer_token));
  } else if (!d.api_key.empty()) {
    call.headers.emplace_back("x-goog-api-key", d.api_key);
  }
  call.headers.emplace_back("content-type", "application/json");
  for (const auto& [k, v] : d.extra_headers) {
    call.headers.emplace_back(k, v);
  }
  return call;
}

class vertex final : public adapter {
 public:
  core::result<upstream_call> build(call_type type, const config::deployment& d, const json& body,
                                    const build_options& opts) const override {
    if (type == call_type::embedding) {
      return core::make_error(core::errc::bad_request, "vertex_ai embeddings are not supported by this gateway",
                              "model");
    }
    try {
      // The deployment's request defaults and drop lists first, on both paths, so that a
      // default is translated like the client's own member.
      json storage;
      const json& in = detail::with_deployment_params(type, d, body, storage);
      if (is_claude(d)) {
        auto out = detail::anthropic_messages_body(type, d, in, opts);
        if (!out) {
          return out.error();
        }
        out->erase("model");
        (*out)["anthropic_version"] = "vertex-2023-10-16";
        auto url = model_url(d, "anthropic", opts.stream ? "streamRawPredict" : "rawPredict");
        if (!url) {
          return url.error();
        }
        auto call = call_to(d, std::move(*url), opts);
        call.body = detail::dump(*out);
        return call;
      }
      if (type == call_type::completion) {
        return core::make_error(core::errc::bad_request, "vertex_ai gemini models do not support /v1/completions",
                                "model");
      }
      auto out = gemini_format::chat_body(d, in, opts, "vertex_ai");
      if (!out) {
        return out.error();
      }
      auto url = model_url(d, "google", opts.stream ? "streamGenerateContent?alt=sse" : "generateContent");
      if (!url) {
        return url.error();
      }
      auto call = call_to(d, std::move(*url), opts);
      call.body = detail::dump(*out);
      return call;
    } catch (const json::exception& e) {
      return detail::bad_param(std::string("could not translate the request for vertex_ai: ") + e.what(), "");
    }
  }

  core::result<translated_response> translate_response(call_type type, const config::deployment& d,
                                                       std::string_view body,
                                                       std::string_view model) const override {
    if (is_claude(d)) {
      return anthropic_adapter().translate_response(type, d, body, model);
    }
    try {
      return gemini_format::chat_response(body, model, label);
    } catch (const json::exception& e) {
      return detail::malformed_upstream(label, std::string("unreadable response: ") + e.what());
    }
  }

  std::unique_ptr<stream_translator> make_stream(call_type type, const config::deployment& d, std::string_view model,
                                                 bool include_usage) const override {
    if (is_claude(d)) {
      return anthropic_adapter().make_stream(type, d, model, include_usage);
    }
    return gemini_format::chat_stream(model, include_usage, label);
  }

  core::error translate_error(const config::deployment& d, int status, std::string_view body) const override {
    return gemini_format::error_of(status, body, is_claude(d) ? std::string_view("AnthropicException") : label);
  }
};

}  // namespace

const adapter& vertex_adapter() {
  static const vertex a;
  return a;
}

}  // namespace switchyard::providers
