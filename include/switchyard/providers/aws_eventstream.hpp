// The `application/vnd.amazon.eventstream` binary framing (Bedrock's ConverseStream):
// each message is a 12-byte prelude (total length, headers length, both big-endian
// u32, and the prelude's CRC32), the headers, the payload and the whole message's
// CRC32. An incremental decoder (bytes in any split) that checks both CRCs, and an
// encoder (tests, fuzz seeds). Pure; thread: any; a decoder belongs to one stream.
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace switchyard::providers::aws {

// Largest message accepted (AWS's own limit for an event-stream message is 16 MiB).
inline constexpr std::size_t max_message_bytes = 16u << 20;
inline constexpr std::size_t prelude_bytes = 12;
inline constexpr std::size_t min_message_bytes = 16;  // prelude + message CRC

struct event_message {
  // Headers whose value is a string (type 7) or bytes (type 6), as sent; the other
  // value types (bool, integers, timestamp, uuid) are skipped after validation.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string payload;
  // The value of a header, empty if absent.
  std::string_view header(std::string_view name) const;
};

// CRC-32 (IEEE 802.3, the zlib/PNG polynomial), continuing from `crc`.
std::uint32_t crc32(std::string_view data, std::uint32_t crc = 0);

class event_stream_decoder {
 public:
  // Appends every complete message in `bytes` (after what is pending) to `out`.
  // nullopt on success; else what is wrong (bad prelude CRC, bad message CRC, a length
  // out of range, malformed headers). After an error the decoder stays failed.
  std::optional<std::string> feed(std::string_view bytes, std::vector<event_message>& out);
  // Bytes of an incomplete message held back (a stream that ends with pending() != 0
  // was cut inside a message).
  std::size_t pending() const { return buffer_.size(); }

 private:
  std::string buffer_;
  std::optional<std::string> failure_;
};

// One encoded message with string-valued headers.
std::string encode_message(const std::vector<std::pair<std::string, std::string>>& headers, std::string_view payload);

// The end of the first complete message in `bytes` (its total length), or 0 if the
// bytes do not hold one yet (or its length is out of range).
std::size_t first_message_end(std::string_view bytes);

}  // namespace switchyard::providers::aws
