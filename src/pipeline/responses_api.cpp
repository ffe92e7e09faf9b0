#include "switchyard/pipeline/responses_api.hpp"

#include "respond.hpp"
#include "responses_call.hpp"

#include "switchyard/providers/adapter.hpp"
#include "switchyard/providers/responses.hpp"

#include <nlohmann/json.hpp>

namespace switchyard::pipeline {

using json = nlohmann::json;

namespace {

core::error not_found(const std::string& id) {
  return core::make_error(core::errc::not_found, "Response with id '" + id + "' not found.");
}

http::response json_answer(std::string body) {
  http::response r;
  r.body = std::move(body);
  r.head_lines = "x-litellm-version: " SWITCHYARD_VERSION "\r\n";
  return r;
}

}  // namespace

namespace {

// `stream` in a query string, with a value other than false/0: a replay of a stored
// response as events, which is not served (the answer would be relayed as one JSON).
bool asks_stream(std::string_view query) {
  while (!query.empty()) {
    const auto amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    const auto eq = pair.find('=');
    if (pair.substr(0, eq) != "stream") {
      continue;
    }
    const std::string_view v = eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
    return !(v == "false" || v == "False" || v == "0");
  }
  return false;
}

}  // namespace

net::awaitable<void> responses_api::handle(http::request& req, http::responder& resp, std::string id, bool cancel) {
  auto key = auth_.master().key_from([&](std::string_view n) { return req.header(n); });
  auto who = co_await auth_.authenticate(std::move(key));
  if (!who) {
    co_await resp.send(http::error_response(who.error()));
    co_return;
  }
  if (auto allowed = auth_.check_route(*who, req.path); !allowed) {
    co_await resp.send(http::error_response(allowed.error()));
    co_return;
  }
  const bool del = req.method == "DELETE";
  if (!cancel && !del && asks_stream(req.query)) {
    auto e = core::make_error(core::errc::bad_request,
                              "Streaming a stored response (GET /v1/responses/{id}?stream=true) is not supported "
                              "by this gateway; GET it without `stream`.",
                              "stream");
    co_await resp.send(http::error_response(e));
    co_return;
  }

  // A response the gateway keeps itself.
  if (auto stored = co_await store_.get(id)) {
    auto j = json::parse(*stored, nullptr, false);
    if (j.is_object() && (who->is_master || j.value("owner", "") == owner_of(*who)) && j.contains("response")) {
      if (cancel) {
        co_await resp.send(http::error_response(core::make_error(
            core::errc::bad_request, "Only responses created with background=true can be cancelled.")));
      } else if (del) {
        co_await store_.erase(id);
        json ans{{"id", id}, {"object", "response"}, {"deleted", true}};
        co_await resp.send(json_answer(ans.dump()));
      } else {
        co_await resp.send(json_answer(j["response"].dump(-1, ' ', false, json::error_handler_t::replace)));
      }
      co_return;
    }
  }

  // One made by an OpenAI / Azure deployment: ask it.
  auto decoded = providers::decode_response_id(id);
  const config::deployment* dep = nullptr;
  if (decoded) {
    for (const auto& d : cfg_->model_list) {
      if (d.id == decoded->model_id && d.provider->responses_api) {
        dep = &d;
        break;
      }
    }
  }
  if (dep == nullptr) {
    co_await resp.send(http::error_response(not_found(id)));
    co_return;
  }
  if (auto allowed = auth::check_model_access(*who, dep->model_name, auth_.groups()); !allowed) {
    co_await resp.send(http::error_response(allowed.error()));
    co_return;
  }
  auto call = providers::responses_endpoint(*dep, "/" + decoded->upstream_id + (cancel ? "/cancel" : ""));
  if (!call) {
    co_await resp.send(http::error_response(call.error()));
    co_return;
  }
  upstream::request ur;
  ur.method = cancel ? "POST" : del ? "DELETE" : "GET";
  ur.url = std::move(call->url);
  if (!req.query.empty() && !cancel && !del) {
    ur.url += ur.url.find('?') == std::string::npos ? '?' : '&';
    ur.url += req.query;  // e.g. include[]=...
  }
  for (auto& h : call->headers) {
    if (h.first != "content-type" || cancel) {
      ur.headers.push_back(std::move(h));
    }
  }
  ur.timeout = std::chrono::milliseconds{60'000};
  ur.connect_timeout = std::chrono::milliseconds{10'000};
  auto r = co_await upstream_.send(std::move(ur));
  if (!r) {
    co_await resp.send(http::error_response(transport_error(r.error(), *dep, std::chrono::milliseconds{60'000})));
    co_return;
  }
  if (r->status >= 400) {
    co_await resp.send(http::error_response(providers::adapter_for(*dep->provider).translate_error(*dep, r->status, r->body)));
    co_return;
  }
  std::string body = std::move(r->body);
  // The provider's id becomes the gateway's wherever it stands as a whole JSON string.
  const std::string from = "\"" + decoded->upstream_id + "\"";
  std::string to;
  providers::append_json_string(to, id);
  for (auto pos = body.find(from); pos != std::string::npos; pos = body.find(from, pos + to.size())) {
    body.replace(pos, from.size(), to);
  }
  auto ans = json_answer(std::move(body));
  http::append_head_line(ans.head_lines, "x-litellm-model-id", dep->id);
  http::append_head_line(ans.head_lines, "x-litellm-model-group", dep->model_name);
  co_await resp.send(std::move(ans));
}

}  // namespace switchyard::pipeline
