// What a deployment's model can take, as LiteLLM reads it: the deployment's model_info
// flags (supports_function_calling, supports_system_messages,
// supports_none_reasoning_effort, supports_xhigh_reasoning_effort, ...) over the price
// map's for its model (LiteLLM's get_model_info merges model_info over its price map).
// The price map is the spend module's table: the app registers a lookup into it once at
// start, before serving (the table never changes afterwards). Without one (tools, tests
// that set none) only model_info's flags are known.
// Thread: any, once registered.
#pragma once
#include "switchyard/config/config.hpp"

#include <functional>
#include <optional>
#include <string_view>

namespace switchyard::providers {

// The price map's flags for a deployment's model; nullptr when the map has no entry.
using capability_lookup = std::function<const config::capability_flags*(const config::deployment&)>;
// Registers the lookup (an empty one: none). Not synchronised: call before any build.
void set_capability_lookup(capability_lookup lookup);

// One deployment's flags, the price map's entry found once.
class model_capabilities {
 public:
  explicit model_capabilities(const config::deployment& d);
  // model_info's boolean `name`, else the price map's, else nullopt.
  std::optional<bool> operator()(std::string_view name) const;

 private:
  const config::deployment& d_;
  const config::capability_flags* map_ = nullptr;
};

}  // namespace switchyard::providers
