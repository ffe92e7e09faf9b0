// Random identifiers. Thread-safe (thread-local generators), never blocks.
#pragma once
#include <string>
#include <string_view>

namespace switchyard::core {

std::string uuid4();  // "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx"; unique, not secret (fast PRNG)
// The same, written over `out` (no allocation once `out` has held one).
void uuid4_into(std::string& out);
std::string random_hex(std::size_t bytes);    // from OpenSSL's CSPRNG
std::string sha256_hex(std::string_view data);
// Constant-time equality (length leaks, contents do not).
bool secure_equal(std::string_view a, std::string_view b);
// "sk-...abcd": how keys appear in logs and responses.
std::string redact_key(std::string_view key);

}  // namespace switchyard::core
