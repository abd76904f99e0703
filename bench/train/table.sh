#!/bin/sh
# Prints the fofa-vs-PyTorch training-throughput benchmark (bench/train/compare_torch.py) as a README block.
# Usage: bench/train/table.sh [path/to/fofa-bench-train] [steps] [rounds]
set -eu
bin=${1:-build/release/bench/train/fofa-bench-train}
steps=${2:-5}
rounds=${3:-3}
echo '```'
echo "medians of $rounds rounds (fofa then torch, back to back); batch 128, 50-row windows, SPEC default model (d 64, 6 blocks, ffn 256, 23,715 items); torch $(/usr/bin/python3 -c 'import torch; print(torch.__version__)')"
/usr/bin/python3 "$(dirname "$0")/compare_torch.py" "$bin" --steps "$steps" --rounds "$rounds" 2>/dev/null
echo '```'
