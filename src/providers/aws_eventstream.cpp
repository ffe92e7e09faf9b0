// The AWS event-stream binary framing: decoder with both CRC checks, and an encoder.
#include "switchyard/providers/aws_eventstream.hpp"

#include <array>

namespace switchyard::providers::aws {

namespace {

constexpr std::array<std::uint32_t, 256> crc_table = [] {
  std::array<std::uint32_t, 256> t{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int k = 0; k < 8; ++k) {
      c = (c & 1u) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    }
    t[i] = c;
  }
  return t;
}();

std::uint32_t be32(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return (std::uint32_t{u[0]} << 24) | (std::uint32_t{u[1]} << 16) | (std::uint32_t{u[2]} << 8) | std::uint32_t{u[3]};
}

void put_be32(std::string& out, std::uint32_t v) {
  out += static_cast<char>((v >> 24) & 0xff);
  out += static_cast<char>((v >> 16) & 0xff);
  out += static_cast<char>((v >> 8) & 0xff);
  out += static_cast<char>(v & 0xff);
}

// Parses the headers block; nullopt on success.
std::optional<std::string> parse_headers(std::string_view h, event_message& m) {
  std::size_t i = 0;
  while (i < h.size()) {
    const std::size_t name_len = static_cast<unsigned char>(h[i++]);
    if (name_len == 0 || i + name_len + 1 > h.size()) {
      return "malformed event-stream header name";
    }
    std::string name(h.substr(i, name_len));
    i += name_len;
    const auto type = static_cast<unsigned char>(h[i++]);
    std::size_t fixed = 0;
    switch (type) {
      case 0:
      case 1: fixed = 0; break;   // bool true / false
      case 2: fixed = 1; break;   // byte
      case 3: fixed = 2; break;   // int16
      case 4: fixed = 4; break;   // int32
      case 5: fixed = 8; break;   // int64
      case 8: fixed = 8; break;   // timestamp
      case 9: fixed = 16; break;  // uuid
      case 6:
      case 7: {
        if (i + 2 > h.size()) {
          return "malformed event-stream header value";
        }
        const std::size_t len = (std::size_t{static_cast<unsigned char>(h[i])} << 8) | static_cast<unsigned char>(h[i + 1]);
        i += 2;
        if (i + len > h.size()) {
          return "malformed event-stream header value";
        }
        m.headers.emplace_back(std::move(name), std::string(h.substr(i, len)));
        i += len;
        continue;
      }
      default: return "unknown event-stream header value type " + std::to_string(type);
    }
    if (i + fixed > h.size()) {
      return "malformed event-stream header value";
    }
    i += fixed;
  }
  return std::nullopt;
}

}  // namespace

std::string_view event_message::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k == name) {
      return v;
    }
  }
  return {};
}

std::uint32_t crc32(std::string_view data, std::uint32_t crc) {
  crc = ~crc;
  for (char ch : data) {
    crc = crc_table[(crc ^ static_cast<unsigned char>(ch)) & 0xffu] ^ (crc >> 8);
  }
  return ~crc;
}

std::optional<std::string> event_stream_decoder::feed(std::string_view bytes, std::vector<event_message>& out) {
  if (failure_) {
    return failure_;
  }
  buffer_.append(bytes);
  std::size_t pos = 0;
  auto fail = [&](std::string why) {
    failure_ = std::move(why);
    buffer_.clear();
    return failure_;
  };
  while (buffer_.size() - pos >= prelude_bytes) {
    const char* p = buffer_.data() + pos;
    const std::uint32_t total = be32(p);
    const std::uint32_t headers_len = be32(p + 4);
    if (crc32(std::string_view(p, 8)) != be32(p + 8)) {
      return fail("event-stream prelude CRC mismatch");
    }
    if (total < min_message_bytes || total > max_message_bytes || headers_len > total - min_message_bytes) {
      return fail("event-stream message length out of range");
    }
    if (buffer_.size() - pos < total) {
      break;
    }
    std::string_view msg(p, total);
    if (crc32(msg.substr(0, total - 4)) != be32(p + total - 4)) {
      return fail("event-stream message CRC mismatch");
    }
    event_message m;
    if (auto bad = parse_headers(msg.substr(prelude_bytes, headers_len), m)) {
      return fail(*bad);
    }
    m.payload.assign(msg.substr(prelude_bytes + headers_len, total - min_message_bytes - headers_len));
    out.push_back(std::move(m));
    pos += total;
  }
  buffer_.erase(0, pos);
  return std::nullopt;
}

std::string encode_message(const std::vector<std::pair<std::string, std::string>>& headers, std::string_view payload) {
  std::string h;
  for (const auto& [name, value] : headers) {
    h += static_cast<char>(name.size());
    h += name;
    h += static_cast<char>(7);
    h += static_cast<char>((value.size() >> 8) & 0xff);
    h += static_cast<char>(value.size() & 0xff);
    h += value;
  }
  std::string out;
  const auto total = static_cast<std::uint32_t>(min_message_bytes + h.size() + payload.size());
  put_be32(out, total);
  put_be32(out, static_cast<std::uint32_t>(h.size()));
  put_be32(out, crc32(out));
  out += h;
  out += payload;
  put_be32(out, crc32(out));
  return out;
}

std::size_t first_message_end(std::string_view bytes) {
  if (bytes.size() < prelude_bytes) {
    return 0;
  }
  const std::uint32_t total = be32(bytes.data());
  if (total < min_message_bytes || total > max_message_bytes || bytes.size() < total) {
    return 0;
  }
  return total;
}

}  // namespace switchyard::providers::aws
