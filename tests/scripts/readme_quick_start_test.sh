#!/usr/bin/env bash
# The README's quick start must be lines of examples/basic_query.cpp, verbatim,
# so that what the README shows is what ctest builds and runs.
#   tests/scripts/readme_quick_start_test.sh [SOURCE_DIR]
set -euo pipefail

src=${1:-$(dirname "$0")/../..}
readme=$src/README.md example=$src/examples/basic_query.cpp
# The first ```cpp block after the "## Quick start" heading.
block=$(awk '/^## Quick start/ { q = 1; next }
             q && /^```cpp$/ { b = 1; next }
             b && /^```$/ { exit }
             b { print }' "$readme")
if [[ -z $block ]]; then
  echo "quick start: no \`\`\`cpp block under \"## Quick start\" in $readme"; exit 1
fi
if [[ $'\n'$(<"$example")$'\n' != *$'\n'"$block"$'\n'* ]]; then
  echo "quick start: the README's block is not verbatim in $example:"
  diff <(echo "$block") "$example" || true
  exit 1
fi
echo "quick start: $(wc -l <<<"$block") lines, verbatim in examples/basic_query.cpp"
