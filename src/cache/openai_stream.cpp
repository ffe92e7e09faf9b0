#include "switchyard/cache/openai_stream.hpp"

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
    int index = c.value("index", 0);
    auto& out = choice(index);
    if (failed_) {
      return;
    }
    if (auto fr = c.find("finish_reason"); fr != c.end() && fr->is_string()) {
      out["finish_reason"] = *fr;
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
        int ti = tc.value("index", static_cast<int>(calls.size()) - 1 < 0 ? 0 : static_cast<int>(calls.size()) - 1);
        if (ti < 0 || ti > 1024) {
          failed_ = true;
          return;
        }
        while (calls.size() <= static_cast<std::size_t>(ti)) {
          calls.push_back(json{{"id", ""}, {"type", "function"}, {"function", {{"name", ""}, {"arguments", ""}}}});
        }
        auto& call = calls[static_cast<std::size_t>(ti)];
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

std::string replay_frames(const json& answer, bool chat, bool include_usage) {
  std::string out;
  auto frame = [&out](const json& j) {
    out += "data: ";
    out += j.dump(-1, ' ', false, json::error_handler_t::replace);
    out += "\n\n";
  };
  json head = json::object();
  head["id"] = answer.value("id", json(""));
  head["object"] = chat ? "chat.completion.chunk" : "text_completion";
  head["created"] = answer.value("created", json(0));
  head["model"] = answer.value("model", json(""));
  if (auto fp = answer.find("system_fingerprint"); fp != answer.end()) {
    head["system_fingerprint"] = *fp;
  }
  const json empty = json::array();
  auto cit = answer.find("choices");
  const json& choices = cit != answer.end() && cit->is_array() ? *cit : empty;
  // 1. the content of every choice
  json first = head;
  first["choices"] = json::array();
  for (const auto& c : choices) {
    json ch = json::object();
    ch["index"] = c.value("index", 0);
    if (chat) {
      json delta = json::object();
      const json msg = c.value("message", json::object());
      delta["role"] = msg.value("role", json("assistant"));
      delta["content"] = msg.value("content", json(nullptr));
      if (auto tc = msg.find("tool_calls"); tc != msg.end() && tc->is_array()) {
        json calls = json::array();
        int i = 0;
        for (auto call : *tc) {
          call["index"] = i++;
          calls.push_back(std::move(call));
        }
        delta["tool_calls"] = std::move(calls);
      }
      if (auto fc = msg.find("function_call"); fc != msg.end()) {
        delta["function_call"] = *fc;
      }
      if (auto r = msg.find("refusal"); r != msg.end() && !r->is_null()) {
        delta["refusal"] = *r;
      }
      ch["delta"] = std::move(delta);
    } else {
      ch["text"] = c.value("text", json(""));
      ch["logprobs"] = nullptr;
    }
    ch["finish_reason"] = nullptr;
    first["choices"].push_back(std::move(ch));
  }
  frame(first);
  // 2. the finish reasons
  json last = head;
  last["choices"] = json::array();
  for (const auto& c : choices) {
    json ch = json::object();
    ch["index"] = c.value("index", 0);
    if (chat) {
      ch["delta"] = json::object();
    } else {
      ch["text"] = "";
      ch["logprobs"] = nullptr;
    }
    ch["finish_reason"] = c.value("finish_reason", json("stop"));
    last["choices"].push_back(std::move(ch));
  }
  frame(last);
  // 3. usage, when asked for
  if (include_usage) {
    json u = head;
    u["choices"] = json::array();
    u["usage"] = answer.value("usage", json(nullptr));
    frame(u);
  }
  out += "data: [DONE]\n\n";
  return out;
}

}  // namespace switchyard::cache
