// The Cohere adapter's v2 chat stream translator with its reading chosen (stream_reading.hpp):
// cohere_adapter().make_stream() gives the default; the unit tests and cohere_stream_fuzz
// compare the two readings through this. Private to providers/.
#pragma once
#include "stream_reading.hpp"
#include "switchyard/providers/adapter.hpp"

#include <memory>
#include <string_view>

namespace switchyard::providers {

std::unique_ptr<stream_translator> make_cohere_stream(std::string_view model, bool include_usage,
                                                      stream_reading reading);

}  // namespace switchyard::providers
