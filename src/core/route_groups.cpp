#include "switchyard/core/route_groups.hpp"

#include <array>

namespace switchyard::core {

namespace {

struct group {
  std::string_view name;
  std::span<const std::string_view> patterns;
};

// LiteLLM's groups of the same names list more routes (ones this gateway does not serve).
constexpr std::array<std::string_view, 22> llm_api = {
    "/v1/chat/completions", "/chat/completions", "/v1/completions", "/completions",
    "/v1/embeddings",       "/embeddings",       "/v1/responses",   "/v1/responses/*",
    "/responses",           "/responses/*",      "/v1/messages",    "/v1/messages/*",
    "/anthropic/v1/messages", "/anthropic/v1/messages/*", "/v1/models", "/v1/models/*",
    "/models",              "/models/*",         "/openai/deployments/*", "/deployments/*",
    "/engines/*",           "/v1/engines/*"};
constexpr std::array<std::string_view, 4> anthropic = {"/v1/messages", "/v1/messages/*", "/anthropic/v1/messages",
                                                       "/anthropic/v1/messages/*"};
constexpr std::array<std::string_view, 15> info = {
    "/key/info",   "/v2/key/info",   "/key/health",    "/team/info",       "/team/list", "/organization/info",
    "/organization/list", "/user/info", "/model/info", "/v1/model/info", "/v2/model/info", "/model_group/info",
    "/v1/models", "/models", "/health"};
constexpr std::array<std::string_view, 10> management = {
    "/key/*", "/team/*", "/user/*", "/organization/*", "/customer/*", "/end_user/*", "/budget/*",
    "/model/*", "/cache/*", "/config/*"};
constexpr std::array<std::string_view, 3> spend_tracking = {"/spend/*", "/global/spend/*", "/global/activity*"};
// What LiteLLM serves without a key by default, as served here: the probes and "/".
constexpr std::array<std::string_view, 7> public_default = {"/",        "/health/liveliness", "/health/liveness",
                                                            "/healthz", "/health/readiness",  "/readyz",
                                                            "/metrics"};
// Routes that may be made public: they tell, they neither spend nor change anything, and
// they need no caller identity to answer.
constexpr std::array<std::string_view, 9> publishable = {
    "/v1/models", "/models", "/v1/models/*", "/models/*", "/model/info", "/v1/model/info", "/v2/model/info",
    "/model_group/info", "/spend/calculate"};

constexpr std::array<group, 7> groups = {{
    {"llm_api_routes", llm_api},
    {"openai_routes", llm_api},
    {"anthropic_routes", anthropic},
    {"info_routes", info},
    {"management_routes", management},
    {"spend_tracking_routes", spend_tracking},
    {"public_routes", public_default},
}};

std::string_view bare(std::string_view name) {
  constexpr std::string_view prefix = "LiteLLMRoutes.";
  return name.starts_with(prefix) ? name.substr(prefix.size()) : name;
}

}  // namespace

std::span<const std::string_view> route_group(std::string_view name) {
  name = bare(name);
  for (const auto& g : groups) {
    if (g.name == name) {
      return g.patterns;
    }
  }
  return {};
}

bool is_route_group(std::string_view name) { return !route_group(name).empty(); }

bool route_path_matches(std::string_view pattern, std::string_view path) {
  if (!pattern.empty() && pattern.back() == '*') {
    return path.starts_with(pattern.substr(0, pattern.size() - 1));
  }
  return pattern == path;
}

bool public_route_allowed(std::string_view pattern) {
  pattern = bare(pattern);
  if (pattern == "public_routes") {
    return true;
  }
  for (auto p : publishable) {
    if (p == pattern) {
      return true;
    }
  }
  for (auto p : public_default) {
    if (p == pattern) {
      return true;
    }
  }
  return false;
}

}  // namespace switchyard::core
