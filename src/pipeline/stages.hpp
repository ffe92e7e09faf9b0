// The LLM pipeline's own stages (private to pipeline/); llm_pipeline chains them.
#pragma once
#include "switchyard/auth/key_auth.hpp"
#include "switchyard/cache/key_memo.hpp"
#include "switchyard/pipeline/attempt_loop.hpp"
#include "switchyard/pipeline/request_ctx.hpp"
#include "switchyard/pipeline/stage.hpp"
#include "switchyard/router/router.hpp"

namespace switchyard::pipeline {

// The caller's key: the master key or a virtual key (from memory; a key not seen
// before waits for its lookup). 401/403/503 on failure.
class auth_stage final : public stage {
 public:
  explicit auth_stage(const auth::key_authenticator& auth) : auth_(auth) {}
  const char* name() const override { return "auth"; }
  verdict run(request_ctx& ctx) override;
  net::awaitable<verdict> run_async(request_ctx& ctx) override;

 private:
  verdict accept(request_ctx& ctx, core::result<auth::principal> who) const;
  const auth::key_authenticator& auth_;
};

// Validates the body without a DOM and reads the members the gateway uses. 400 on
// malformed JSON, a missing model or messages/prompt/input.
class parse_stage final : public stage {
 public:
  // `enforce_user`: general_settings.enforce_user_param, a request without `user` is a 400.
  explicit parse_stage(bool enforce_user = false) : enforce_user_(enforce_user) {}
  const char* name() const override { return "parse"; }
  verdict run(request_ctx& ctx) override;
  // With the response cache on: a body the cache remembers (the very bytes of one that
  // found an answer) takes its scan from there instead of being scanned again.
  void remember_bodies(const cache::key_memo* memo) { memo_ = memo; }

 private:
  bool enforce_user_;
  const cache::key_memo* memo_ = nullptr;
};

// Aliases, model access and that the model names a group (the provider stage picks a
// deployment for each attempt: retries and fallbacks re-pick). 400/403.
class route_stage final : public stage {
 public:
  route_stage(const auth::key_authenticator& auth, router::router& rt) : auth_(auth), router_(rt) {}
  const char* name() const override { return "route"; }
  verdict run(request_ctx& ctx) override;

 private:
  const auth::key_authenticator& auth_;
  router::router& router_;
};

// Calls the provider through the attempt loop (retries, fallbacks, cooldowns). Always waits.
class provider_stage final : public stage {
 public:
  explicit provider_stage(attempt_loop& loop) : loop_(loop) {}
  const char* name() const override { return "provider"; }
  verdict run(request_ctx&) override { return verdict::wait(); }
  net::awaitable<verdict> run_async(request_ctx& ctx) override;

 private:
  attempt_loop& loop_;
};

}  // namespace switchyard::pipeline
