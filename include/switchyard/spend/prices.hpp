// Prices per token (and per second) in LiteLLM's model_prices_and_context_window.json
// format, and the cost of one call from its token counts.
//
// Lookup for a deployment, as LiteLLM: the deployment's own prices
// (litellm_params / model_info: input_cost_per_token, output_cost_per_token,
// input_cost_per_second, output_cost_per_second, cache_read_input_token_cost,
// cache_creation_input_token_cost) over the table's entry for model_info.base_model,
// else "<provider>/<model>", else the bare model name. Local providers (Ollama, a local
// api_base) cost 0 unless priced. See docs/spend.md.
//
// Owner: app/ loads the table once at startup (blocking file read) and shares it
// read-only. Thread: any (immutable after load). Never blocks after loading.
#pragma once
#include "switchyard/config/config.hpp"
#include "switchyard/core/error.hpp"

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace switchyard::spend {

// One entry of the price map. Unset prices are nullopt (a missing cache price falls back
// to the input price, a missing tier price to the base price).
struct price {
  std::optional<double> input, output;                 // USD per token
  std::optional<double> cache_read, cache_creation;    // USD per cached / cache-written prompt token
  std::optional<double> output_reasoning;              // USD per reasoning token, when separate
  std::optional<double> input_above_200k, output_above_200k, cache_read_above_200k, cache_creation_above_200k;
  std::optional<double> input_per_second, output_per_second;
  long long max_input_tokens = 0, max_output_tokens = 0;
  long long max_tokens = 0;  // the map's older single bound (most entries: the output bound)
  std::string mode;      // chat, embedding, completion, ...
  std::string provider;  // litellm_provider
  config::capability_flags flags;  // the entry's supports_* booleans (read by the adapters)
  bool priced() const { return input || output || input_per_second || output_per_second; }
};

// Token counts of one call, as the provider reported them (or as estimated).
struct tokens {
  long long prompt = 0;          // all prompt tokens, cached and cache-written included
  long long completion = 0;      // all completion tokens, reasoning included
  long long cached = 0;          // prompt tokens read from the provider's prompt cache
  long long cache_creation = 0;  // prompt tokens written to it (Anthropic)
  long long reasoning = 0;       // completion tokens spent reasoning
};

// The cost in USD of `t` at price `p` (duration: for per-second prices). Above 200k prompt
// tokens the *_above_200k rates replace the base rates where the entry has them.
double cost_of(const price& p, const tokens& t, double duration_s = 0);

// The most tokens of one kind one call is billed for. A provider's count is read as a
// whole number in [0, 10^18] (core::count_or); beyond this bound it is not believed: no
// model's window is near it (the largest hold about 10^7 tokens; a batch of 2,048
// embeddings inputs of 8k tokens is under 2 * 10^7), while a count of 10^15 from a broken
// or hostile upstream would charge a key millions of dollars and exhaust its budget. Not
// relative to a model's max_tokens: n choices, embeddings batches and server-side tool
// loops legitimately exceed one window, and many models have no entry.
inline constexpr long long max_billed_tokens = 100'000'000;
// Holds every count of `t` to [0, max_billed_tokens]; true when one was changed.
bool bound_tokens(tokens& t);
// Calls billed with a count held to the bound (process-wide, since start): the
// switchyard_usage_bounded counter.
std::uint64_t usage_bounded_total();
void count_usage_bounded();

class price_table {
 public:
  price_table() = default;
  // Parses a price map (JSON object: model -> entry). Entries that are not objects, and
  // LiteLLM's "sample_spec", are skipped. Error: not valid JSON, or not an object.
  static core::result<price_table> parse(std::string_view json_text, std::string_view origin);
  // Reads and parses a file. Blocking.
  static core::result<price_table> load_blocking(const std::string& path);
  // Entries of `other` replace those of this table with the same name.
  void merge(const price_table& other);

  const price* find(std::string_view model) const;
  std::size_t size() const { return entries_.size(); }

  // The price of a deployment (see the header comment). nullopt: unpriced (costs 0).
  // `local`: the deployment is on a local provider (its cost is 0 unless priced).
  std::optional<price> for_deployment(const config::deployment& d, bool local) const;
  // The table's entry for a deployment's model (base_model, else the model as written,
  // else without its prefix, ...: the lookup for_deployment starts from), without the
  // deployment's own prices; nullptr when the table has none.
  const price* entry_for(const config::deployment& d, bool local) const;

 private:
  std::map<std::string, price, std::less<>> entries_;
};

// Where the shipped table is looked for: SWITCHYARD_PRICES_DIR's model_prices.json, else
// ./config/model_prices.json, else the source tree's config/.
std::string shipped_prices_path();

}  // namespace switchyard::spend
