// Bodies seen before: request bytes -> the SHA-256 hex of their canonical form and their
// top-level members (docs/cache.md, "The key of a body seen before").
//
// The key is a pure function of (call, model group, body bytes): the canonical text is
// made from the body's members as received and nothing else. And the JSON scan of a body
// (is it valid, where are its members) is a pure function of its bytes. A hit is answered
// for the bytes a client sent before, and clients repeat their bytes exactly (one SDK,
// one prompt), so a body found here needs neither a scan, nor the canonical text, nor its
// hash: it is compared byte for byte with the one remembered, never trusted on a hash
// alone.
//
// A fixed number of slots, each holding one body up to max_body bytes (bounded memory:
// slots x max_body). A slot is chosen by a fast seeded hash of the bytes; a body that
// lands on a taken slot replaces it. Filled by the cache stage only for bodies whose key
// found an answer, so a stream of one-off requests does not churn it.
// Thread: one (the loop's). Never blocks.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace switchyard::cache {

// A top-level member of a remembered body: the spans of its scan (providers::json_member)
// as offsets into the body, so they can be pointed into the next copy of the same bytes.
struct member_spans {
  std::uint32_t key_at = 0, key_size = 0;
  std::uint32_t whole_at = 0, whole_size = 0;
  std::uint32_t value_at = 0, value_size = 0;
  std::uint8_t kind = 0;
  std::size_t text_bytes = 0;
};

namespace detail {
// The slot hash: with the CPU's CRC32C instruction where it has SSE4.2, else portable.
// Both are given for tests (the CRC32C one falls back to the portable one without SSE4.2).
std::uint64_t memo_hash_portable(std::uint64_t seed, std::string_view s);
std::uint64_t memo_hash_crc32c(std::uint64_t seed, std::string_view s);
}  // namespace detail

class key_memo {
 public:
  static constexpr std::size_t default_slots = 256;
  static constexpr std::size_t default_max_body = 16 * 1024;

  explicit key_memo(std::size_t slots = default_slots, std::size_t max_body = default_max_body);

  // Slot choice for a body: cheap (8 bytes a step), not a content check.
  std::uint64_t hash(std::string_view body) const;

  // The hex key remembered for exactly these bytes, call and model group, or nullptr.
  // `verified`: what find_members() set for these bytes earlier in the same request; while
  // that slot was not written since, its bytes are known equal and not compared again.
  const std::string* find(std::uint64_t h, std::string_view call, std::string_view group,
                          std::string_view body, std::uint64_t verified = 0) const;
  // The members remembered for exactly these bytes, or nullptr. When the slot holds these
  // bytes, `verified` is set to its version (for find()), even if it has no members.
  const std::vector<member_spans>* find_members(std::uint64_t h, std::string_view body,
                                                std::uint64_t* verified = nullptr) const;

  // Remembers `hex` and `members` for these bytes (a body above max_body is not kept).
  void put(std::uint64_t h, std::string_view call, std::string_view group, std::string_view body,
           std::string_view hex, std::vector<member_spans> members);

  std::size_t max_body() const { return max_body_; }
  std::uint64_t hits() const { return hits_; }
  std::uint64_t member_hits() const { return member_hits_; }

 private:
  struct slot {
    std::uint64_t h = 0;
    std::uint64_t version = 0;  // set from versions_ at each put (never 0)
    bool used = false;
    std::string call;
    std::string group;
    std::string body;
    std::string hex;
    std::vector<member_spans> members;
  };
  const slot* holding(std::uint64_t h, std::string_view body) const;

  std::vector<slot> slots_;
  std::size_t max_body_;
  std::uint64_t seed_;
  std::uint64_t versions_ = 0;
  mutable std::uint64_t hits_ = 0;
  mutable std::uint64_t member_hits_ = 0;
};

}  // namespace switchyard::cache
