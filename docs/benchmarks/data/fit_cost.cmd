# 2026-12-07, commit 88ba714, 2 CPU cores, one other 1-thread run (a training) on the second core, torch 2.13.0 CPU wheel:
OMP_NUM_THREADS=1 python benchmarks/fit_cost.py --max-steps 300 --threads 1 --calibrations ddim:250
