// The Bedrock adapter's request builder with an explicit time (the adapter itself uses
// the system clock): the SigV4 signature depends on it, so tests pin it. Pure.
#pragma once
#include "switchyard/providers/adapter.hpp"

#include <chrono>
#include <string>
#include <string_view>

namespace switchyard::providers {

const adapter& bedrock_adapter();

core::result<upstream_call> build_bedrock_call(call_type type, const config::deployment& d,
                                               const nlohmann::json& body, const build_options& opts,
                                               std::chrono::system_clock::time_point now);

// The Bedrock model id of a deployment: upstream_model without LiteLLM's route prefix
// ("converse/"), e.g. "us.anthropic.claude-3-5-sonnet-20240620-v1:0".
std::string bedrock_model_id(const config::deployment& d);

}  // namespace switchyard::providers
