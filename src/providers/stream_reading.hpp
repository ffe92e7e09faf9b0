// How a translating stream reads its upstream events (Gemini's SSE events, Ollama's NDJSON
// lines). Plain ones are read from a scan of their bytes and every other one through an
// nlohmann DOM; `dom_only` reads every event through the DOM: the reference the unit tests
// and the fuzz targets compare the scanning reader with. `scanned`, when set, counts the
// events read from their scan. Private to providers/.
#pragma once
#include <cstddef>

namespace switchyard::providers {

struct stream_reading {
  bool dom_only = false;
  std::size_t* scanned = nullptr;
};

}  // namespace switchyard::providers
