#include "switchyard/cache/openai_stream.hpp"

#include "switchyard/core/json_get.hpp"

namespace switchyard::cache {

using json = nlohmann::json;

void stream_assembler::feed(std::string_view bytes) {
  if (failed_ || done_) {
    return;
  }
  fed_ += bytes.size();
  if (fed_ > max_bytes_) {
    too_large_ = failed_ = true;
    pending_.clear();
    return;
  }
  pending_.append(bytes);
  std::size_t start = 0;
  for (;;) {
    auto nl = pending_.find('\n', start);
    if (nl == std::string::npos) {
      break;
    }
    std::string_view line(pending_.data() + start, nl - start);
    start = nl + 1;
    if (!line.empty() && line.back() == '\r') {
      line.remove_suffix(1);
    }
    if (line.substr(0, 5) == "data:") {
      auto data = line.substr(5);
      while (!data.empty() && data.front() == ' ') {
        data.remove_prefix(1);
      }
      event(data);
      if (failed_ || done_) {
        pending_.clear();
        return;
      }
    }
  }
  pending_.erase(0, start);
}

json& stream_assembler::choice(int index) {
  if (index < 0 || index > 1024) {
    failed_ = true;
    index = 0;
  }
  if (choices_.size() <= static_cast<std::size_t>(index)) {
    choices_.resize(static_cast<std::size_t>(index) + 1);
  }
  auto& c = choices_[static_cast<std::size_t>(index)];
  if (c.is_null()) {
    c = json::object();
    c["index"] = index;
    if (chat_) {
      c["message"] = json{{"role", "assistant"}, {"content", nullptr}};
    } else {
      c["text"] = "";
    }
    c["finish_reason"] = nullptr;
    c["logprobs"] = nullptr;
  }
  return c;
}

namespace {

void append_string(json& target, const char* key, const json& piece) {
  if (!piece.is_string()) {
    return;
  }
  auto& t = target[key];
  if (t.is_string()) {
    t.get_ref<std::string&>() += piece.get_ref<const std::string&>();
  } else {
    t = piece;
  }
}

// A chunk's logprobs added to the choice's: each list member (chat's `content` and
// `refusal`; a completion's `tokens`, `token_logprobs`, `top_logprobs`, `text_offset`)
// grows by the chunk's items, in order, as OpenAI's one-JSON answer holds them all.
void append_logprobs(json& out, const json& piece) {
  if (!piece.is_object()) {
    return;
  }
  auto& acc = out["logprobs"];
  if (!acc.is_object()) {
    acc = json::object();
  }
  for (const auto& [k, v] : piece.items()) {
    auto& have = acc[k];
    if (v.is_array()) {
      if (!have.is_array()) {
        have = json::array();
      }
      for (const auto& item : v) {
        have.push_back(item);
      }
    } else if (have.is_null()) {
      have = v;
    }
  }
}

}  // namespace

void stream_assembler::event(std::string_view data) {
  if (data == "[DONE]") {
    done_ = true;
    return;
  }
  auto j = json::parse(data, nullptr, false);
  if (!j.is_object() || j.contains("error")) {
    failed_ = true;
    return;
  }
  for (const char* k : {"id", "created", "model", "system_fingerprint"}) {
    if (auto it = j.find(k); it != j.end() && !it->is_null() && !head_.contains(k)) {
      head_[k] = *it;
    }
  }
  if (auto u = j.find("usage"); u != j.end() && u->is_object()) {
    usage_ = *u;
  }
  auto cs = j.find("choices");
  if (cs == j.end() || !cs->is_array()) {
    return;
  }
  for (const auto& c : *cs) {
    if (!c.is_object()) {
      continue;
    }
    // A choice without an index is the first; one whose index is not a whole number is
    // not an answer the gateway can rebuild, so the stream is not stored.
    const auto index = c.contains("index") ? core::integer_member(c, "index") : std::optional<long long>(0);
    if (!index || *index < 0 || *index > 1024) {
      failed_ = true;
      return;
    }
    auto& out = choice(static_cast<int>(*index));
    if (failed_) {
      return;
    }
    if (auto fr = c.find("finish_reason"); fr != c.end() && fr->is_string()) {
      out["finish_reason"] = *fr;
    }
    if (auto lp = c.find("logprobs"); lp != c.end()) {
      append_logprobs(out, *lp);
    }
    if (!chat_) {
      if (auto t = c.find("text"); t != c.end()) {
        append_string(out, "text", *t);
      }
      continue;
    }
    auto d = c.find("delta");
    if (d == c.end() || !d->is_object()) {
      continue;
    }
    auto& msg = out["message"];
    if (auto r = d->find("role"); r != d->end() && r->is_string()) {
      msg["role"] = *r;
    }
    if (auto t = d->find("content"); t != d->end()) {
      append_string(msg, "content", *t);
    }
    if (auto t = d->find("refusal"); t != d->end()) {
      append_string(msg, "refusal", *t);
    }
    if (auto fc = d->find("function_call"); fc != d->end() && fc->is_object()) {
      auto& f = msg["function_call"];
      if (!f.is_object()) {
        f = json{{"name", ""}, {"arguments", ""}};
      }
      append_string(f, "name", fc->value("name", json()));
      append_string(f, "arguments", fc->value("arguments", json()));
    }
    if (auto tcs = d->find("tool_calls"); tcs != d->end() && tcs->is_array()) {
      auto& calls = msg["tool_calls"];
      if (!calls.is_array()) {
        calls = json::array();
      }
      for (const auto& tc : *tcs) {
        if (!tc.is_object()) {
          continue;
        }
        // Without an index (some OpenAI-compatible servers send whole calls that way), a
        // piece with an id of its own starts a new call; one without continues the last.
        long long last = calls.empty() ? 0 : static_cast<long long>(calls.size()) - 1;
        if (const auto id = core::string_or(tc, "id"); !id.empty() && !calls.empty()) {
          const auto& last_id = calls.back()["id"];
          if (last_id.is_string() && !last_id.get_ref<const std::string&>().empty() && last_id != id) {
            last = static_cast<long long>(calls.size());
          }
        }
        const auto tix = tc.contains("index") ? core::integer_member(tc, "index") : std::optional<long long>(last);
        if (!tix || *tix < 0 || *tix > 1024) {
          failed_ = true;
          return;
        }
        const auto ti = static_cast<std::size_t>(*tix);
        while (calls.size() <= ti) {
          calls.push_back(json{{"id", ""}, {"type", "function"}, {"function", {{"name", ""}, {"arguments", ""}}}});
        }
        auto& call = calls[ti];
        if (auto id = tc.find("id"); id != tc.end() && id->is_string()) {
          call["id"] = *id;
        }
        if (auto ty = tc.find("type"); ty != tc.end() && ty->is_string()) {
          call["type"] = *ty;
        }
        if (auto fn = tc.find("function"); fn != tc.end() && fn->is_object()) {
          append_string(call["function"], "name", fn->value("name", json()));
          append_string(call["function"], "arguments", fn->value("arguments", json()));
        }
      }
    }
  }
}

std::optional<std::string> stream_assembler::result(const std::optional<json>& usage) const {
  if (!done_ || failed_) {
    return std::nullopt;
  }
  json out = json::object();
  out["id"] = head_.value("id", json(""));
  out["object"] = chat_ ? "chat.completion" : "text_completion";
  out["created"] = head_.value("created", json(0));
  out["model"] = head_.value("model", json(""));
  if (head_.contains("system_fingerprint")) {
    out["system_fingerprint"] = head_["system_fingerprint"];
  }
  json cs = json::array();
  for (std::size_t i = 0; i < choices_.size(); ++i) {
    if (!choices_[i].is_null()) {
      cs.push_back(choices_[i]);
    }
  }
  out["choices"] = std::move(cs);
  if (usage_) {
    out["usage"] = *usage_;
  } else if (usage) {
    out["usage"] = *usage;
  }
  return out.dump(-1, ' ', false, json::error_handler_t::replace);
}

// A stored answer is the provider's JSON as it came (OpenAI-compatible servers vary):
// every read below takes what is there and of the expected type, and never throws.
// The chunks have the members OpenAI's own chunks have (what a miss relays): the first
// delta names `refusal` (null), every
// choice names its `logprobs` (null when there are none), and with include_usage every
// chunk carries `usage`, null until the last one, so that a client that reads them
// strictly (or compares a hit with a miss) sees one shape.
std::string replay_frames(const json& answer, bool chat, bool include_usage) {
  std::string out;
  auto frame = [&out](const json& j) {
    out += "data: ";
    out += j.dump(-1, ' ', false, json::error_handler_t::replace);
    out += "\n\n";
  };
  json head = json::object();
  head["id"] = core::member_or(answer, "id", "");
  head["object"] = chat ? "chat.completion.chunk" : "text_completion";
  head["created"] = core::member_or(answer, "created", 0);
  head["model"] = core::member_or(answer, "model", "");
  if (const auto* fp = core::member(answer, "system_fingerprint")) {
    head["system_fingerprint"] = *fp;
  }
  // The content and finish chunks carry `usage` null: only the last chunk has it.
  auto with_usage = [include_usage](json& chunk) {
    if (include_usage) {
      chunk["usage"] = nullptr;
    }
  };
  const json empty = json::array();
  const auto* cit = core::member(answer, "choices");
  const json& choices = cit != nullptr && cit->is_array() ? *cit : empty;
  // A choice's index: its own when a whole number, else its position.
  auto index_of = [](const json& c, std::size_t position) {
    return core::integer_member(c, "index").value_or(static_cast<long long>(position));
  };
  // 1. the content of every choice
  json first = head;
  first["choices"] = json::array();
  std::size_t position = 0;
  for (const auto& c : choices) {
    json ch = json::object();
    ch["index"] = index_of(c, position++);
    if (chat) {
      json delta = json::object();
      const json* mp = core::member(c, "message");
      const json& msg = mp != nullptr && mp->is_object() ? *mp : empty;
      delta["role"] = core::member_or(msg, "role", "assistant");
      delta["content"] = core::member_or(msg, "content", nullptr);
      if (const auto* tc = core::member(msg, "tool_calls"); tc != nullptr && tc->is_array()) {
        json calls = json::array();
        int i = 0;
        for (auto call : *tc) {
          if (call.is_object()) {
            call["index"] = i++;
            calls.push_back(std::move(call));
          }
        }
        delta["tool_calls"] = std::move(calls);
      }
      if (const auto* fc = core::member(msg, "function_call")) {
        delta["function_call"] = *fc;
      }
      // OpenAI's first delta names `refusal`, null unless the model refused.
      delta["refusal"] = core::member_or(msg, "refusal", nullptr);
      ch["delta"] = std::move(delta);
    } else {
      ch["text"] = core::member_or(c, "text", "");
    }
    // The answer's logprobs whole, with the content they describe (a client that asked
    // for them gets them from a hit as from the provider).
    const auto* lp = core::member(c, "logprobs");
    ch["logprobs"] = lp != nullptr && lp->is_object() ? *lp : json(nullptr);
    ch["finish_reason"] = nullptr;
    first["choices"].push_back(std::move(ch));
  }
  with_usage(first);
  frame(first);
  // 2. the finish reasons
  json last = head;
  last["choices"] = json::array();
  position = 0;
  for (const auto& c : choices) {
    json ch = json::object();
    ch["index"] = index_of(c, position++);
    if (chat) {
      ch["delta"] = json::object();
    } else {
      ch["text"] = "";
    }
    ch["logprobs"] = nullptr;
    ch["finish_reason"] = core::member_or(c, "finish_reason", "stop");
    last["choices"].push_back(std::move(ch));
  }
  with_usage(last);
  frame(last);
  // 3. usage, when asked for
  if (include_usage) {
    json u = head;
    u["choices"] = json::array();
    u["usage"] = core::member_or(answer, "usage", nullptr);
    frame(u);
  }
  out += "data: [DONE]\n\n";
  return out;
}

}  // namespace switchyard::cache
