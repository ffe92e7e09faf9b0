// GET /v1/responses/{id}, DELETE /v1/responses/{id} and POST /v1/responses/{id}/cancel.
// A response the gateway answered itself (a provider without the Responses API) is read
// from, or deleted in, the responses_store; one made by an OpenAI or Azure deployment
// (its id names the deployment: providers::decode_response_id) is asked of that
// deployment, with the provider's own id, and its answer relayed with the gateway's id.
// The caller needs a key (as for POST /v1/responses); a stored response is served only
// to the key that made it (or the master key), a deployment's only to keys that may use
// its model group. Unknown ids are a 404 in OpenAI's shape.
// Owner: app/. Thread: the loop thread. Never blocks.
#pragma once
#include "switchyard/auth/key_auth.hpp"
#include "switchyard/config/config.hpp"
#include "switchyard/core/asio.hpp"
#include "switchyard/http/message.hpp"
#include "switchyard/pipeline/responses_store.hpp"
#include "switchyard/pipeline/upstream_caller.hpp"

#include <memory>
#include <string>

namespace switchyard::pipeline {

class responses_api {
 public:
  responses_api(std::shared_ptr<const config::config> cfg, const auth::key_authenticator& auth,
                upstream_caller& upstream, responses_store& store)
      : cfg_(std::move(cfg)), auth_(auth), upstream_(upstream), store_(store) {}

  // `id` from the path; `cancel`: the POST .../cancel route.
  net::awaitable<void> handle(http::request& req, http::responder& resp, std::string id, bool cancel);

 private:
  std::shared_ptr<const config::config> cfg_;
  const auth::key_authenticator& auth_;
  upstream_caller& upstream_;
  responses_store& store_;
};

}  // namespace switchyard::pipeline
