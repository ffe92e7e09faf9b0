#!/usr/bin/env bash
# No co_await inside a conditional expression (`c ? co_await a() : b`): GCC 12 mishandles
# the temporaries there (a std::string result was freed before it was sent, seen by ASAN
# in GET /metrics). Await in an if statement instead.
#
#   tests/lint/co_await_conditional.sh ROOT    # exit 1 and the lines when there is one
set -euo pipefail
root=${1:?usage: co_await_conditional.sh ROOT}
hits=$(grep -rnE '\?[[:space:]]*co_await|[^:]:[[:space:]]*co_await' "$root/src" "$root/include" \
         --include='*.cpp' --include='*.hpp' |
       grep -vE '^[^:]+:[0-9]+:[[:space:]]*(case[[:space:]]|default[[:space:]]*:)' || true)
if [[ -n "$hits" ]]; then
  echo "co_await inside a conditional expression (await in an if statement instead):"
  echo "$hits"
  exit 1
fi
echo "no co_await inside a conditional expression"
