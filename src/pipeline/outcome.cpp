#include "switchyard/pipeline/outcome.hpp"

namespace switchyard::pipeline {

int outcome::retries() const { return attempts.empty() ? 0 : attempts.back().retry; }

int outcome::fallbacks() const { return attempts.empty() ? 0 : attempts.back().fallback; }

}  // namespace switchyard::pipeline
