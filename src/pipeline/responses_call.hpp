// One attempt of a /v1/responses request (the attempt_runner of call_type::responses;
// provider_call hands these requests to it, so retries, fallbacks, cooldowns, spend and
// metrics are the chat path's):
//  - a deployment whose provider serves the Responses API (provider_info::responses_api:
//    OpenAI, Azure) gets the client's bytes with `model` replaced and gateway fields
//    dropped; the answer, or its typed events, go back as they came except the response
//    id, which becomes one that names the deployment (providers::encode_response_id), so
//    that GET, DELETE, cancel and previous_response_id find it again;
//  - any other deployment gets the request translated to chat (providers/responses.hpp)
//    through its adapter, and the answer translated back; the conversation is kept in the
//    responses_store for previous_response_id, GET and DELETE.
// Private to pipeline/. Thread: the loop thread. Never blocks.
#pragma once
#include "provider_call.hpp"

#include "switchyard/pipeline/responses_store.hpp"
#include "switchyard/providers/responses.hpp"

#include <nlohmann/json.hpp>

#include <optional>
#include <string>

namespace switchyard::pipeline {

// What a /v1/responses request learned once, for all of its attempts.
struct responses_slot {
  bool resolved = false;
  std::string owner;                // who may read back what it stores (owner_of)
  std::string previous;             // previous_response_id as sent; empty: none
  bool previous_stored = false;     // the gateway holds that conversation
  nlohmann::json history = nlohmann::json::array();  // its items, when stored
  std::optional<providers::decoded_response_id> previous_decoded;  // made by an OpenAI/Azure deployment
};

// The owner recorded with a stored response: the virtual key's hash, "" for the master
// key or when auth is off. Only the same key (or the master key) reads it back.
std::string owner_of(const auth::principal& who);

class responses_call final : public attempt_runner {
 public:
  responses_call(std::shared_ptr<const config::config> cfg, upstream_caller& upstream, provider_call& chat,
                 responses_store& store)
      : cfg_(std::move(cfg)), upstream_(upstream), chat_(chat), store_(store) {}

  net::awaitable<std::optional<core::error>> attempt(request_ctx& ctx) override;

 private:
  net::awaitable<std::optional<core::error>> resolve(request_ctx& ctx, responses_slot& slot);
  net::awaitable<std::optional<core::error>> native(request_ctx& ctx, responses_slot& slot);
  // Through chat; `mock`: a canned answer instead of a provider call.
  net::awaitable<std::optional<core::error>> translated(request_ctx& ctx, responses_slot& slot,
                                                        const std::string* mock);
  // Keeps a translated answer for previous_response_id / GET / DELETE.
  void keep(request_ctx& ctx, const responses_slot& slot, const nlohmann::json& response);

  std::shared_ptr<const config::config> cfg_;
  upstream_caller& upstream_;
  provider_call& chat_;
  responses_store& store_;
};

}  // namespace switchyard::pipeline
