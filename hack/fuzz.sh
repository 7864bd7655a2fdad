#!/usr/bin/env bash
# Run every fuzz target of the module for a short time each.
#
# Usage: hack/fuzz.sh [fuzztime]   (default 10s; any `go test -fuzztime` value)
#
# `go test -fuzz` accepts one target in one package per run, so targets are
# discovered from the test sources and run one after another.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
fuzztime=${1:-10s}

found=0
# Files named *_test.go that declare `func FuzzXxx(f *testing.F)`.
while IFS=: read -r file target; do
	pkg="./$(dirname "$file")"
	echo "fuzz: $pkg $target ($fuzztime)"
	go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg"
	found=$((found + 1))
done < <(grep -rHoE --include='*_test.go' '^func (Fuzz[A-Za-z0-9_]*)\(' --exclude-dir=.git . |
	sed -E 's|^\./||; s|:func (Fuzz[A-Za-z0-9_]*)\($|:\1|' | sort -u)

echo "fuzz: ran $found target(s)"
