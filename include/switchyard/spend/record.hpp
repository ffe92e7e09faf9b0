// One spend_logs row: what one request cost and who pays for it, as plain values (no
// pqxx, no DOM). Serialized as one JSON object for the spill file, and as one line of COPY
// text for the database batch.
// Thread: any (a value type).
#pragma once
#include "switchyard/core/error.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace switchyard::spend {

struct spend_row {
  std::string row_id;      // uuid4, made once per request: the idempotency key
  std::string request_id;  // x-litellm-call-id
  std::string call_type;   // acompletion, atext_completion, aembedding (LiteLLM's names)
  std::string api_key;     // sha256 hex of the virtual key; empty for the master key
  std::string key_alias, user_id, team_id, organization_id, end_user;
  std::string model;        // as requested
  std::string model_group;  // the group that answered
  std::string model_id;     // the deployment id
  std::string provider, api_base;
  long long prompt_tokens = 0, completion_tokens = 0, total_tokens = 0;
  long long cached_tokens = 0, cache_creation_tokens = 0, reasoning_tokens = 0;
  bool usage_estimated = false;
  double spend = 0;
  std::int64_t start_us = 0;             // Unix time, microseconds
  std::int64_t end_us = 0;
  std::int64_t completion_start_us = 0;  // 0: none
  bool success = true;
  int status_code = 0;
  std::string error_type;
  bool cache_hit = false;
  int retries = 0, fallbacks = 0;
  std::string requester_ip, session_id;
  std::string tags_json = "[]";      // JSON array of strings
  std::string metadata_json = "{}";  // JSON object
  std::string messages_json, response_json;  // JSON, only with store_prompts_in_spend_logs
  // Set once a write of this row may have reached the database (a batch that failed,
  // perhaps after its commit; a row read back from a spill file): its next write checks
  // spend_logs for it first. Not stored.
  bool maybe_written = false;

  // Rough size in memory, for the queue's byte bound.
  std::size_t approx_bytes() const;
};

// general_settings.store_prompts_in_spend_logs: the most a row keeps of a request's
// messages, and of its answer, each (bytes of JSON text).
inline constexpr std::size_t max_stored_bytes = 64 * 1024;

// The JSON text of a request's messages (or an answer) as a row stores it: the value itself
// when it is at most max_stored_bytes, else {"truncated": true, "bytes": <its size>,
// "text": "<its first max_stored_bytes>"}. `whole_bytes`: the size of the whole value when
// `json_text` is only its beginning (0: it is whole). NUL characters (which jsonb refuses)
// become U+FFFD; text that is not JSON is stored as the "text" of that object.
std::string stored_json(std::string_view json_text, std::size_t whole_bytes = 0);
// A streamed answer, from the text the client received, as a row stores it:
// {"object": "chat.completion", "choices": [{"index": 0, "message": {"role": "assistant",
// "content": text}}]} (text_completion: "choices": [{"index": 0, "text": text}]), with
// "truncated": true when `text` is only the first max_stored_bytes of it.
std::string stored_stream_response(bool chat, std::string_view text, bool truncated);

// Appends `r` as one JSON object (keys as in spend_logs' columns).
void append_json(std::string& out, const spend_row& r);
// Appends `r` as one line of COPY's text format (newline included), columns in the order of
// the spend writer's staging table (store/postgres/spend_repo.hpp, spend_copy_columns):
// what the writer sends to Postgres. Strings are sanitized as in append_json.
void append_copy_line(std::string& out, const spend_row& r);
// Appends `r` as one line of COPY text in spend_logs' own columns (spend_log_copy_columns
// in store/postgres/spend_repo.hpp): empty optional strings as NULL, times as timestamptz
// text to the microsecond. The writer's path for rows never sent before (docs/spend.md,
// "Writing: the cost logger").
void append_log_copy_line(std::string& out, const spend_row& r);
// Whether append_log_copy_line can write `r`'s times (years 1000 to 9999).
bool log_copy_can_write(const spend_row& r);
// Appends the batch's sums, one COPY line per (UTC day of the start, key, user, team,
// organisation, end user, model, model group, provider, tags), in the columns of the
// writer's spend_groups table (store/postgres/spend_repo.hpp): tokens, spend, requests,
// successes and failures. Returns the number of lines.
std::size_t append_group_lines(std::string& out, const std::vector<spend_row>& rows);
// Parses what append_json wrote (maybe_written set: a row read back from a file may have
// been written before). Error on anything else.
core::result<spend_row> row_from_json(std::string_view text);

}  // namespace switchyard::spend
