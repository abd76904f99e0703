#!/bin/sh
# Prints the fofa-vs-PyTorch model benchmark (bench/model/compare_torch.py) as a README block.
# Usage: bench/model/table.sh [path/to/fofa-bench-model]
set -eu
bin=${1:-build/release/bench/model/fofa-bench-model}
echo '```'
/usr/bin/python3 "$(dirname "$0")/compare_torch.py" "$bin" --cpu 1 2>/dev/null
echo '```'
