// OpenAI's Responses API (POST /v1/responses) for providers that only speak chat:
// a Responses request -> an OpenAI chat request (which every adapter builds from), an
// OpenAI chat.completion -> a Response object, and a stream of chat.completion.chunk
// payloads -> the Responses API's typed events. Also the ids the gateway hands out for
// responses made by an OpenAI or Azure deployment (the deployment encoded in the id, as
// LiteLLM does), and the Responses usage object. Pure functions, no I/O, no clock (the
// caller passes ids and times). Thread: any; a responses_event_writer belongs to one
// request.
#pragma once
#include "switchyard/config/config.hpp"
#include "switchyard/core/error.hpp"
#include "switchyard/providers/json_scan.hpp"
#include "switchyard/providers/openai.hpp"

#include <nlohmann/json.hpp>

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace switchyard::providers {

// ---------------------------------------------------------------- endpoint

// The URL and headers of a deployment's Responses API (OpenAI: <api_base>/responses;
// Azure: <api_base>/openai/responses?api-version=<v>, or /openai/v1/responses for the v1
// API) with `suffix` appended to the path ("" to create, "/<id>", "/<id>/cancel").
// `bearer`: an Entra ID token (pipeline/token_broker.hpp) sent instead of Azure's api-key.
core::result<upstream_call> responses_endpoint(const config::deployment& d, std::string_view suffix,
                                               std::string_view bearer = {});

// ---------------------------------------------------------------- ids

// A response id that names the deployment which made it:
// "resp_" + base64("litellm:custom_llm_provider:<provider>;model_id:<id>;response_id:<upstream id>"),
// LiteLLM's format, so ids stay valid across a switch between the two gateways.
std::string encode_response_id(std::string_view provider, std::string_view model_id, std::string_view upstream_id);
struct decoded_response_id {
  std::string provider;
  std::string model_id;
  std::string upstream_id;
};
// nullopt when `id` is not such an id (e.g. one the gateway made for a translated answer).
std::optional<decoded_response_id> decode_response_id(std::string_view id);

// ---------------------------------------------------------------- usage

// A Responses usage object (input_tokens, output_tokens, total_tokens,
// input_tokens_details.cached_tokens, output_tokens_details.reasoning_tokens) in the
// gateway's terms (prompt = input, completion = output). known=false when not an object.
usage usage_of_response(const nlohmann::json& usage_object);
// The Responses usage object for `u`.
nlohmann::json response_usage_json(const usage& u);

// ---------------------------------------------------------------- request

// A Responses request translated to an OpenAI chat request. `history` is the
// conversation of previous_response_id (Responses input items, oldest first; empty when
// none). 400 naming the member for what chat cannot express (other tool types, input
// files, unknown item types, background mode). The request's `additional_drop_params`
// goes along as it is: the chat adapter drops the chat members it names (a deployment's
// max_tokens default, say) and never sends it.
core::result<nlohmann::json> responses_to_chat(const nlohmann::json& request, const nlohmann::json& history);

// The request members a Responses call never sends upstream, besides the gateway's own
// fields: those the deployment's drop lists name (drop_param_names) and those the
// request's own `additional_drop_params` lists, as for chat (docs/providers.md,
// "Dropping parameters"); never `model` or `input`, which every call needs.
// `scan` = scan_json(request). Empty for most requests: nothing is parsed then.
std::vector<std::string> responses_dropped_names(const config::deployment& d, const json_scan& scan);

// `request` without the members `names` lists: `request` itself when it has none of
// them, else a copy kept in `storage`.
const nlohmann::json& without_members(const nlohmann::json& request, const std::vector<std::string>& names,
                                      nlohmann::json& storage);

// The request's `input` as a list of items (a string becomes one user message item).
// 400 when it is neither a string nor an array of objects.
core::result<nlohmann::json> input_items_of(const nlohmann::json& request);

// ---------------------------------------------------------------- response

// What a Response object says besides its output: its id, creation time, the model the
// client asked for, and the request members it echoes (instructions, tools, ...).
struct response_meta {
  std::string id;            // "resp_..."
  long long created_at = 0;  // unix seconds
  std::string model;
  nlohmann::json request = nlohmann::json::object();  // the client's request (members echoed)
  std::string item_prefix;   // unique part of the output items' ids (msg_<p>, fc_<p>_<n>)
};

// An OpenAI chat.completion -> a Response object (status completed, or incomplete when
// the answer stopped at the token limit). 500 when `chat` is not a chat.completion.
core::result<nlohmann::json> chat_to_response(const nlohmann::json& chat, const response_meta& meta);

// The Response object before any output (status "in_progress"), as response.created sends it.
nlohmann::json response_skeleton(const response_meta& meta, std::string_view status);

// Output items of a Response -> input items that continue the conversation (messages,
// function calls; reasoning items dropped).
nlohmann::json output_as_input(const nlohmann::json& response);

// ---------------------------------------------------------------- stream

// The members of a Responses stream's `error` event for `e` (code, message, param), without
// its type and sequence number.
nlohmann::json error_event_fields(const core::error& e);

// OpenAI chat.completion.chunk payloads -> Responses typed events, each one SSE frame
// ("event: <type>\ndata: <json>\n\n", sequence numbers from 0). start() gives
// response.created and response.in_progress; feed() one chunk's events (text deltas open
// a message item, tool-call deltas open function_call items); finish() closes the open
// items and gives response.completed (or response.incomplete) with the whole Response;
// fail() gives response.failed and an error event.
class responses_event_writer {
 public:
  explicit responses_event_writer(response_meta meta);
  void start(std::string& out);
  // One chat chunk payload (JSON text). A payload that is not a chunk is an error (500).
  core::result<void> feed(std::string_view chunk, std::string& out);
  void finish(const usage& u, std::string& out);
  void fail(const core::error& e, std::string& out);
  // The final Response object (after finish() or fail()).
  const nlohmann::json& response() const { return final_; }
  // Text of output_text deltas so far (for stored prompts).
  const std::string& text() const { return text_; }

 private:
  // A function_call item being streamed, keyed by the chat tool_calls[].index it comes from.
  struct open_call {
    std::size_t index = 0;    // output_index
    std::string id;           // fc_...
    std::string call_id;      // the provider's call id
    std::string name;
    std::string args;
  };

  void emit(std::string_view type, nlohmann::json ev, std::string& out);
  std::size_t add_item(std::string& out, nlohmann::json item);
  void open_reasoning(std::string& out);
  void close_reasoning(std::string& out);
  void open_message(std::string& out);
  void close_message(std::string& out);
  void close_call(open_call& c, std::string& out);
  void close_all(std::string& out);
  nlohmann::json base_response(std::string_view status) const;

  response_meta meta_;
  long long seq_ = 0;
  // Every item announced so far, at its output_index (an open item holds its added form
  // until it is done).
  nlohmann::json output_ = nlohmann::json::array();
  // The open reasoning item (one summary_text part), if any.
  bool rs_open_ = false;
  int reasonings_ = 0;
  std::string rs_id_;
  std::string rs_text_;
  std::size_t rs_index_ = 0;
  // The open message item (output_text), if any.
  bool msg_open_ = false;
  int messages_ = 0;
  std::string msg_id_;
  std::string msg_text_;
  std::size_t msg_index_ = 0;
  // The function_call items, open until the stream ends: chat streams may interleave
  // the deltas of several calls by index, so no call is known to be complete earlier.
  std::map<long long, open_call> calls_;
  long long last_chat_index_ = -1;
  std::string finish_reason_;
  std::string text_;
  nlohmann::json final_;
};

}  // namespace switchyard::providers
