// Embeddings cached per input item (docs/cache.md, "Embeddings per input item"): an
// embeddings request whose `input` is a list is looked up item by item; the provider is
// called for the missing items only and its answer is merged with the cached ones, in the
// request's order. Pure functions over the OpenAI embeddings answer; the cache stage does
// the lookups and the storing.
#pragma once

#include "switchyard/core/error.hpp"

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace switchyard::cache {

// The value to store for each of the answer's `data` items, by their `index` (0 to n-1):
// the JSON text {"embedding": <the array of floats, or the base64 string>, "model": <the
// answer's model>, "prompt_tokens": <the item's share>}. Empty when the answer is not an
// OpenAI embeddings list of exactly n items with distinct indexes. The readers below also
// take a bare embedding (the value older gateways stored).
// The shares: the answer's usage.prompt_tokens divided among the items in proportion to
// `weights` (one per item; 0 for an item the provider was not sent, whose share is 0),
// whole numbers that add up to it, so that a request made again wholly from the cache
// reports the count its miss did. Not stored without weights or without that count.
// `count`: the provider's own count to share (the answer given may be a merged one, whose
// count includes the cached items'); without it, the answer's usage.prompt_tokens.
std::vector<std::string> embedding_values(std::string_view answer, std::size_t n,
                                          const std::vector<long long>& weights = {},
                                          std::optional<long long> count = std::nullopt);

// The answer for the whole request from the provider's answer for its missing items:
// `cached[i]` is item i's cached value, or nullopt for the items sent, whose embeddings
// are the answer's, in order. The answer's `model` is kept; its usage.prompt_tokens and
// total_tokens (when it has a whole-number prompt_tokens) get the cached items' counts
// added: each one's stored share, else `estimates[i]` (stored without one), so that the
// answer counts every item it holds, as a full hit does. An error when the answer does
// not hold one embedding per item sent.
core::result<std::string> merge_embedding_answer(std::string_view answer,
                                                 const std::vector<std::optional<std::string>>& cached,
                                                 const std::vector<long long>& estimates = {});

// The answer when every item was cached: no provider call; its `model` is the one stored
// with the first item (the provider's, as a miss names it), else `model`. Its usage is
// the items' token counts (as LiteLLM counts a full hit's inputs): each item's stored
// share, else `estimates[i]` (an item stored without one), else 0. nullopt when a cached
// value is not JSON (then every item is a miss).
struct embedding_hit {
  std::string body;
  long long prompt_tokens = 0;
};
std::optional<embedding_hit> embedding_hit_answer(const std::vector<std::string>& values, std::string_view model,
                                                  const std::vector<long long>& estimates = {});

}  // namespace switchyard::cache
