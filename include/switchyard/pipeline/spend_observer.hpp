// The cost logger's `finish` observer: prices the request from its outcome and queues one
// spend row (spend/cost_logger.hpp). When the provider reported no usage (a stream cut
// short, a client that left), the tokens are estimated and the row is marked so: prompt
// tokens from the request's text (characters / 4), completion tokens from what was sent
// (one per streamed event, or answer bytes / 4). See docs/spend.md.
// Owner: app/. Thread: the loop thread. Never blocks (the logger queues and returns).
#pragma once
#include "switchyard/pipeline/billed.hpp"
#include "switchyard/pipeline/stage.hpp"
#include "switchyard/spend/cost_logger.hpp"
#include "switchyard/spend/pricer.hpp"

namespace switchyard::pipeline {

// What a finished request is billed (struct billed, request_ctx.hpp). The spend row, the
// Prometheus spend and token counters and the callbacks all read it: once `finish` has run,
// it is priced once and kept in the request (request_ctx::final_bill).
billed billed_of(const request_ctx& ctx, spend::pricer& prices);

// The spend row of a finished request (used by the observer; public for tests).
// store_prompts (general_settings.store_prompts_in_spend_logs): the row also holds the
// request's messages (chat), prompt (completions) or input (embeddings) and the answer
// (ctx.kept_response), each at most spend::max_stored_bytes (spend::stored_json).
spend::spend_row spend_row_of(const request_ctx& ctx, spend::pricer& prices, bool store_prompts = false);
// The same, into a default-constructed row.
void fill_spend_row(spend::spend_row& r, const request_ctx& ctx, spend::pricer& prices, bool store_prompts = false);

class spend_observer final : public observer {
 public:
  spend_observer(spend::pricer& prices, spend::cost_logger& logger, bool store_prompts = false)
      : prices_(prices), logger_(logger), store_prompts_(store_prompts) {}
  void on_finish(const request_ctx& ctx) noexcept override;

 private:
  spend::pricer& prices_;
  spend::cost_logger& logger_;
  bool store_prompts_;
};

}  // namespace switchyard::pipeline
