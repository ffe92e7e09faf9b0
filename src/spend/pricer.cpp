#include "switchyard/spend/pricer.hpp"

#include <spdlog/spdlog.h>

namespace switchyard::spend {

bool pricer::is_local(const config::deployment& d) {
  if (d.provider->local) {
    return true;
  }
  const std::string& b = d.api_base;
  for (const char* host : {"://localhost", "://127.", "://[::1]", "://0.0.0.0", "://host.docker.internal"}) {
    if (b.find(host) != std::string::npos) {
      return true;
    }
  }
  return false;
}

const price* pricer::price_of(const config::deployment& d) {
  // Keyed by everything that decides the price: the same model with other overrides is
  // another entry (wildcard deployments are per-request copies with the same id).
  // A request is priced more than once (its cost header, then at `finish`), and requests
  // mostly go to the deployment the one before went to: the last entry is checked first.
  if (last_ != nullptr && d.id == last_id_ && d.model == last_model_) {
    return *last_ ? &**last_ : nullptr;
  }
  key_.assign(d.id);
  key_ += '\n';
  key_ += d.model;
  auto it = memo_.find(std::string_view(key_));
  if (it == memo_.end()) {
    if (memo_.size() >= 10'000) {
      last_ = nullptr;
      memo_.clear();  // wildcard groups can name unbounded models: keep the memo bounded
    }
    // Ollama models are never looked up in the table (their names are not the hosted
    // models'); other local servers (vLLM, llama.cpp) are, but an unpriced one is expected.
    auto p = table_->for_deployment(d, d.provider->local);
    if (!p && !is_local(d)) {
      spdlog::warn("no price for model '{}' (deployment {} of '{}'): its calls cost 0. Add it to the price table "
                   "or set input_cost_per_token / output_cost_per_token on the deployment",
                   d.model, d.id, d.model_name);
    }
    it = memo_.emplace(key_, std::move(p)).first;
  }
  last_ = &it->second;  // a node of the map: it stays where it is until the map is cleared
  last_id_ = d.id;
  last_model_ = d.model;
  return it->second ? &*it->second : nullptr;
}

double pricer::cost(const config::deployment& d, const tokens& t, double duration_s) {
  const price* p = price_of(d);
  if (p == nullptr) {
    return 0.0;
  }
  // Every price of a call (its cost header, its spend row, its budget) counts at most
  // max_billed_tokens of each kind (prices.hpp).
  tokens held = t;
  bound_tokens(held);
  return cost_of(*p, held, duration_s);
}

}  // namespace switchyard::spend
