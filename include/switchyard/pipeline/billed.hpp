// What a finished request is billed, shared by the observers that read it.
#pragma once

#include "switchyard/spend/prices.hpp"

namespace switchyard::pipeline {

// What a finished request is billed: its tokens (reported, else estimated) and their cost
// (pipeline::billed_of, spend_observer.hpp).
struct billed {
  spend::tokens t;
  bool estimated = false;
  bool bounded = false;  // a reported count was beyond spend::max_billed_tokens (held to it)
  double spend = 0;
};

}  // namespace switchyard::pipeline
