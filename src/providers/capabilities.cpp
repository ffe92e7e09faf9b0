#include "switchyard/providers/capabilities.hpp"

#include <utility>

namespace switchyard::providers {

namespace {
capability_lookup& registered() {
  static capability_lookup lookup;
  return lookup;
}
}  // namespace

void set_capability_lookup(capability_lookup lookup) { registered() = std::move(lookup); }

model_capabilities::model_capabilities(const config::deployment& d) : d_(d) {
  if (const auto& lookup = registered()) {
    map_ = lookup(d);
  }
}

std::optional<bool> model_capabilities::operator()(std::string_view name) const {
  if (d_.model_info.is_object()) {
    if (auto f = d_.model_info.find(name); f != d_.model_info.end() && f->is_boolean()) {
      return f->get<bool>();
    }
  }
  if (map_ != nullptr) {
    if (auto f = map_->find(name); f != map_->end()) {
      return f->second;
    }
  }
  return std::nullopt;
}

}  // namespace switchyard::providers
