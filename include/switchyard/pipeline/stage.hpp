// The shape every stage of the LLM pipeline has, and of the observers of `finish`.
//
// A stage looks at the request context and either lets the request go on (`next`), or
// answers it (`answered`: with an error for the runner to send, or having sent the answer
// itself), or needs to wait for something (`wait`). `run()` is a plain call, so a stage
// that does not wait costs no coroutine frame on the hot path; only when it returns
// `wait` does the runner co_await `run_async()`. The chain itself is declared in one
// place, llm_pipeline's constructor (see docs/life-of-a-request.md).
//
// Observers see every request once, after it ended whatever happened (`finish`). They
// copy what they need into their own bounded queue and return: no I/O, no lock shared
// with a database thread, no throw, no failing the request.
// Thread: the loop thread. Never blocks.
#pragma once
#include "switchyard/core/asio.hpp"
#include "switchyard/core/error.hpp"

#include <optional>
#include <utility>

namespace switchyard::pipeline {

struct request_ctx;

enum class step { next, answered, wait };

struct verdict {
  step s = step::next;
  std::optional<core::error> error;  // with `answered`: what the runner sends

  static verdict next() { return {}; }
  static verdict wait() { return {step::wait, std::nullopt}; }
  // The stage already sent the answer.
  static verdict done() { return {step::answered, std::nullopt}; }
  static verdict fail(core::error e) { return {step::answered, std::move(e)}; }
};

class stage {
 public:
  virtual ~stage() = default;
  virtual const char* name() const = 0;
  virtual verdict run(request_ctx& ctx) = 0;
  // Only called after run() returned `wait`.
  virtual net::awaitable<verdict> run_async(request_ctx& ctx);
};

class observer {
 public:
  virtual ~observer() = default;
  virtual void on_finish(const request_ctx& ctx) noexcept = 0;
};

}  // namespace switchyard::pipeline
