#!/usr/bin/env bash
# The README's code must be code that ctest builds and runs:
#  - its first ```cpp block is examples/tour.cpp between "// README: begin"
#    and "// README: end", verbatim but for the function body's 4-space indent;
#  - the first ```cpp block under "## Quick start" is lines of
#    examples/basic_query.cpp, verbatim.
# With --run, instead: the ```sh block under "## Quick start" runs as written
# (build with g++, start a throwaway server, run, stop), in a scratch directory
# that links the source's folders, with the server's directory moved into it.
#   tests/scripts/readme_quick_start_test.sh [--run] [SOURCE_DIR]
set -euo pipefail

run=0
if [[ ${1:-} == --run ]]; then run=1; shift; fi
src=$(realpath -- "${1:-$(dirname "$0")/../..}")
readme=$src/README.md
failed=0

# readme_block AWK_START_PATTERN [LANG]: the first ```LANG (cpp) block after the first line matching it.
readme_block() {
  awk -v start="$1" -v lang="${2:-cpp}" '!q && $0 ~ start { q = 1 }
                     q && $0 == "```" lang { b = 1; next }
                     b && /^```$/ { exit }
                     b { print }' "$readme"
}

same() {  # same WHAT EXPECTED ACTUAL_FILE_TEXT
  local what=$1 block=$2 source=$3
  if [[ -z $block ]]; then
    echo "$what: no \`\`\`cpp block found in $readme"; failed=1; return
  fi
  if [[ $'\n'$source$'\n' != *$'\n'"$block"$'\n'* ]]; then
    echo "$what: the README's block is not verbatim in its example:"
    diff <(echo "$block") <(echo "$source") || true
    failed=1; return
  fi
  echo "$what: $(wc -l <<<"$block") lines, verbatim"
}

if ((run)); then
  commands=$(readme_block '^## Quick start' sh)
  [[ $commands == *"g++ "* ]] || { echo "quick start: no g++ line in the \`\`\`sh block under \"## Quick start\""; exit 1; }
  scratch=$(mktemp -d) && chmod 755 "$scratch"  # the server runs as postgres when we are root
  trap '"$src/scripts/pg-sandbox" stop "$scratch/db" >/dev/null 2>&1 || true; rm -rf "$scratch"' EXIT
  for d in single_include include examples scripts; do ln -s "$src/$d" "$scratch/$d"; done
  cd "$scratch"
  echo "quick start: running the README's commands in $scratch:"
  echo "${commands//\/tmp\/reservoir-db/$scratch/db}"
  bash -euo pipefail -xc "${commands//\/tmp\/reservoir-db/$scratch/db}"
  exit
fi

tour=$(awk '/\/\/ README: end/ { exit } b { sub(/^    /, ""); print } /\/\/ README: begin/ { b = 1 }' \
  "$src/examples/tour.cpp")
same "headline (examples/tour.cpp)" "$(readme_block '^')" "$tour"
same "quick start (examples/basic_query.cpp)" "$(readme_block '^## Quick start')" "$(<"$src/examples/basic_query.cpp")"
exit "$failed"
