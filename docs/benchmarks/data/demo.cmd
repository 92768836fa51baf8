# 2026-12-07, 2 idle CPU cores (no other job), commit dfbfabc, torch 2.13.0 CPU:
cd "$(mktemp -d)" && (time python -m sdd.demo --out demo.h5ad --figure demo.png) > demo.log 2>&1
# demo.txt is demo.log with each progress bar reduced to its last state.
