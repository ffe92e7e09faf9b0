// The cost of one call to a deployment: the deployment's price (price_table::for_deployment,
// memoized per deployment id) applied to its token counts. An unpriced model costs 0 and
// is logged once per model, not per request. Ollama deployments cost 0 unless the
// deployment prices them; a deployment on a local api_base (vLLM, llama.cpp, LM Studio) is
// priced when the table knows its model, and costs 0 without a warning otherwise.
// Owner: app/ (one per config). Thread: the loop thread (the memo is not locked). Never blocks.
#pragma once
#include "switchyard/config/config.hpp"
#include "switchyard/core/word_hash.hpp"
#include "switchyard/spend/prices.hpp"

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace switchyard::spend {

class pricer {
 public:
  explicit pricer(std::shared_ptr<const price_table> table) : table_(std::move(table)) {}

  // USD; 0 for an unpriced model. Each count is held to max_billed_tokens (prices.hpp).
  double cost(const config::deployment& d, const tokens& t, double duration_s = 0);
  const price* price_of(const config::deployment& d);
  const price_table& table() const { return *table_; }
  std::shared_ptr<const price_table> shared_table() const { return table_; }

  // Ollama, or any deployment whose api_base is this machine or the Docker host.
  static bool is_local(const config::deployment& d);

 private:
  std::shared_ptr<const price_table> table_;
  // deployment id + model -> price; looked up through key_ (reused: no allocation per call).
  std::unordered_map<std::string, std::optional<price>, core::word_hasher, std::equal_to<>> memo_;
  std::string key_;
  // The entry found last and what it was found for.
  const std::optional<price>* last_ = nullptr;
  std::string last_id_, last_model_;
};

}  // namespace switchyard::spend
