#include "switchyard/pipeline/spend_observer.hpp"

#include "switchyard/core/ids.hpp"
#include "switchyard/pipeline/request_ctx.hpp"

#include <spdlog/spdlog.h>

namespace switchyard::pipeline {

namespace {

std::int64_t unix_us(time_point t, time_point steady_now, std::chrono::system_clock::time_point sys_now) {
  if (t == time_point{}) {
    return 0;
  }
  auto sys = sys_now - std::chrono::duration_cast<std::chrono::system_clock::duration>(steady_now - t);
  return std::chrono::duration_cast<std::chrono::microseconds>(sys.time_since_epoch()).count();
}

// Tags: the body's `tags`, else `metadata.tags` (arrays of strings), as a JSON array.
std::string tags_of(const request_ctx& ctx) {
  if (!ctx.scan.ok) {
    return "[]";
  }
  const auto* direct = ctx.scan.find("tags");
  const auto* meta = ctx.scan.find("metadata");
  if (direct == nullptr && meta == nullptr) {
    return "[]";  // most requests: no JSON built
  }
  nlohmann::json tags = nlohmann::json::array();
  auto take = [&tags](const nlohmann::json& v) {
    if (v.is_array()) {
      for (const auto& t : v) {
        if (t.is_string()) {
          tags.push_back(t);
        }
      }
    }
  };
  if (direct != nullptr && direct->kind == providers::json_kind::array) {
    take(providers::json_member_value(*direct));
  } else if (meta != nullptr && meta->kind == providers::json_kind::object) {
    auto v = providers::json_member_value(*meta);
    if (auto it = v.find("tags"); it != v.end()) {
      take(*it);
    }
  }
  return tags.dump();
}

// store_prompts_in_spend_logs: the request's messages / prompt / input and the answer.
void keep_prompt_and_answer(const request_ctx& ctx, spend::spend_row& r) {
  if (ctx.scan.ok) {
    for (const char* name : {"messages", "prompt", "input"}) {
      if (const auto* m = ctx.scan.find(name); m != nullptr) {
        r.messages_json = spend::stored_json(m->value);
        break;
      }
    }
  }
  if (ctx.out.streamed) {
    if (ctx.kept_bytes > 0 || ctx.out.status == 200) {
      r.response_json = spend::stored_stream_response(ctx.type != providers::call_type::completion,
                                                      ctx.kept_response, ctx.kept_bytes > ctx.kept_response.size());
    }
  } else if (!ctx.kept_response.empty()) {
    r.response_json = spend::stored_json(ctx.kept_response, ctx.kept_bytes);
  }
}

}  // namespace

namespace {

billed bill_now(const request_ctx& ctx, spend::pricer& prices) {
  const auto& o = ctx.out;
  const auto* a = o.final_attempt();
  billed b;
  // Tokens: every attempt that answered something counts once (the final one).
  if (a != nullptr && !a->mock) {
    const auto& u = a->usage;
    if (u.known) {
      b.t = {u.prompt_tokens, u.completion_tokens, u.cached_tokens, u.cache_creation_tokens, u.reasoning_tokens};
      // A count no call can reach is not believed (spend::max_billed_tokens): the row, the
      // budget and the metrics get the bound, as the price does.
      b.bounded = spend::bound_tokens(b.t);
    } else if (o.status > 0 && o.status < 400) {
      // Something was sent but the provider's count never came: estimate what was received.
      b.estimated = true;
      b.t.prompt = static_cast<long long>(ctx.estimated_tokens);
      b.t.completion = o.streamed ? static_cast<long long>(ctx.events_sent) : static_cast<long long>(o.bytes_out / 4);
    } else if (a->cancelled) {
      // The provider had the prompt for a while before the client left and the call was
      // cancelled: providers bill the input of a request they processed.
      b.estimated = true;
      b.t.prompt = static_cast<long long>(ctx.estimated_tokens);
    }
  }
  if (o.cache_hit && o.usage.known) {
    // The cached answer's tokens, for the record; a hit costs nothing (as in LiteLLM).
    const auto& u = o.usage;
    b.t = {u.prompt_tokens, u.completion_tokens, u.cached_tokens, u.cache_creation_tokens, u.reasoning_tokens};
    spend::bound_tokens(b.t);  // stored by a miss whose counts were read unbounded
    return b;
  }
  if (a != nullptr && a->dep && (b.t.prompt > 0 || b.t.completion > 0)) {
    const double seconds = std::chrono::duration<double>(a->end - a->start).count();
    b.spend = prices.cost(*a->dep, b.t, seconds);
  }
  return b;
}

}  // namespace

billed billed_of(const request_ctx& ctx, spend::pricer& prices) {
  if (!ctx.finished) {
    return bill_now(ctx, prices);  // mid-request (a stream's running cost): not final yet
  }
  if (!ctx.final_bill) {
    ctx.final_bill = bill_now(ctx, prices);
    if (ctx.final_bill->bounded) {
      // Once per request (the final bill is made once); the provider's own counts are in
      // the answer the client got.
      spend::count_usage_bounded();
      const auto* a = ctx.out.final_attempt();
      const auto& u = a->usage;
      spdlog::warn("spend: request {}: deployment {} ('{}') reported usage beyond {} tokens (prompt {}, completion "
                   "{}, cached {}, cache creation {}, reasoning {}): billed as {} prompt, {} completion",
                   ctx.req.call_id, a->dep ? a->dep->id : std::string(), a->dep ? a->dep->model : std::string(),
                   spend::max_billed_tokens, u.prompt_tokens, u.completion_tokens, u.cached_tokens,
                   u.cache_creation_tokens, u.reasoning_tokens, ctx.final_bill->t.prompt,
                   ctx.final_bill->t.completion);
    }
  }
  return *ctx.final_bill;
}

void fill_spend_row(spend::spend_row& r, const request_ctx& ctx, spend::pricer& prices, bool store_prompts) {
  const auto& o = ctx.out;
  core::uuid4_into(r.row_id);
  r.request_id = ctx.req.call_id;
  r.call_type = names_of(ctx.type).spend_name;
  if (const auto& k = ctx.who.vkey) {
    r.api_key = k->token;
    r.key_alias = k->key_alias;
    r.user_id = k->user_id;
    r.team_id = k->team_id;
    r.organization_id = k->organization_id;
  }
  r.end_user = ctx.end_user();
  r.model = ctx.requested_model;
  r.cache_hit = o.cache_hit;
  if (o.cache_hit) {
    r.model_group = ctx.cache_group;  // no deployment: the group the entry was found for
  }
  const auto* a = o.final_attempt();
  if (a != nullptr && a->dep) {
    r.model_group = a->dep->model_name;
    r.model_id = a->dep->id;
    r.provider = a->dep->provider->name;
    r.api_base = a->dep->api_base;
  }
  const auto b = billed_of(ctx, prices);
  r.usage_estimated = b.estimated;
  r.prompt_tokens = b.t.prompt;
  r.completion_tokens = b.t.completion;
  r.total_tokens = b.t.prompt + b.t.completion;
  r.cached_tokens = b.t.cached;
  r.cache_creation_tokens = b.t.cache_creation;
  r.reasoning_tokens = b.t.reasoning;
  r.spend = b.spend;
  // The steady times become wall-clock times against one reading of each clock; finish
  // read the steady one just before the observers ran (o.done), so it is not read again.
  const auto steady_now = o.done != time_point{} ? o.done : std::chrono::steady_clock::now();
  const auto sys_now = std::chrono::system_clock::now();
  r.start_us = unix_us(o.received, steady_now, sys_now);
  r.end_us = unix_us(o.done, steady_now, sys_now);
  r.completion_start_us = a != nullptr ? unix_us(a->first_token, steady_now, sys_now) : 0;
  r.success = o.status > 0 && o.status < 400 && !o.error;
  // Nothing sent because the client had left: 499, nginx's "client closed request".
  r.status_code = o.status == 0 && o.client_gone ? 499 : o.status;
  if (o.error) {
    r.error_type = o.error->type;
  }
  r.retries = o.retries();
  r.fallbacks = o.fallbacks();
  r.requester_ip = ctx.req.remote_address;
  r.session_id.assign(ctx.req.header("x-litellm-session-id"));
  r.tags_json = tags_of(ctx);
  if (store_prompts) {
    keep_prompt_and_answer(ctx, r);
  }
}

spend::spend_row spend_row_of(const request_ctx& ctx, spend::pricer& prices, bool store_prompts) {
  spend::spend_row r;
  fill_spend_row(r, ctx, prices, store_prompts);
  return r;
}

void spend_observer::on_finish(const request_ctx& ctx) noexcept {
  if (std::string_view(ctx.out.answered_by) == "auth") {
    return;  // no caller to charge; unauthenticated traffic must not fill the spend log
  }
  try {
    // Built in its place in the queue: a row is ~20 strings, moving it costs.
    logger_.add_in_place([&](spend::spend_row& r) { fill_spend_row(r, ctx, prices_, store_prompts_); });
  } catch (const std::exception& e) {
    // A row that cannot be built (out of memory) must not fail the request.
    spdlog::error("spend: request {} not recorded: {}", ctx.req.call_id, e.what());
  }
}

}  // namespace switchyard::pipeline
