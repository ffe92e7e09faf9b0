// libFuzzer target: the server's plain-head fast path (http/simple_head.hpp) against
// Beast's request parser. The input is a request head's field lines (the fuzzer's bytes
// after a fixed request line). Traps when the fast path accepts fields that Beast
// rejects, or reads them differently (names, values, Content-Length, keep-alive): the
// fast path may only leave requests to Beast, never judge one differently.
#include "switchyard/http/simple_head.hpp"

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace http = boost::beast::http;
namespace simple = switchyard::http::simple;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > 8192) {
    return 0;
  }
  const std::string_view fields(reinterpret_cast<const char*>(data), size);
  // The fast path scans field lines that end with CRLF; the head ends with a blank line.
  if (fields.find("\r\n\r\n") != std::string_view::npos || (size >= 2 && fields.substr(0, 2) == "\r\n")) {
    return 0;
  }
  std::vector<std::pair<std::string, std::string>> ours;
  simple::framing fr;
  const bool plain = simple::scan_fields(fields.data(), fields.data() + fields.size(),
                                         [&](std::string_view name, std::string_view value) {
                                           if (!fr.take(name, value)) {
                                             return false;
                                           }
                                           simple::append_lowered(ours, name, value);
                                           return true;
                                         });
  if (!plain) {
    return 0;  // left to Beast: nothing to compare
  }
  std::string head = "POST /v1/chat/completions HTTP/1.1\r\n";
  head.append(fields);
  head += "\r\n";
  http::request_parser<http::string_body> p;
  p.header_limit(16384);
  // No body limit: it is the server's to apply (413) whichever path read the head, and
  // Beast's default (1 MB) would refuse a head that declares more, which the fast path
  // rightly leaves to that check.
  p.body_limit(boost::none);
  p.eager(false);
  boost::beast::error_code ec;
  p.put(boost::asio::buffer(head), ec);
  if (ec || !p.is_header_done()) {
    std::abort();  // the fast path accepted a head Beast refuses
  }
  // Beast keeps fields of the same name together (a repeated name goes after its first
  // occurrence); compare both lists ordered by name, each name's values in arrival order.
  std::vector<std::pair<std::string, std::string>> theirs;
  for (const auto& f : p.get()) {
    std::string name(f.name_string());
    for (auto& c : name) {
      if (c >= 'A' && c <= 'Z') {
        c = static_cast<char>(c - 'A' + 'a');
      }
    }
    theirs.emplace_back(std::move(name), std::string(f.value()));
  }
  const auto by_name = [](const auto& a, const auto& b) { return a.first < b.first; };
  std::stable_sort(ours.begin(), ours.end(), by_name);
  std::stable_sort(theirs.begin(), theirs.end(), by_name);
  if (ours != theirs) {
    std::abort();  // a field read differently
  }
  const auto beast_length = p.content_length();
  if (fr.have_length != beast_length.has_value() || (beast_length && *beast_length != fr.length)) {
    std::abort();
  }
  if (fr.keep_alive != p.keep_alive()) {
    std::abort();
  }
  return 0;
}
