# 2026-12-07, commit 88ba714, 2 CPU cores, one other 1-thread run (a training) on the second core for the whole run, torch 2.13.0 CPU wheel:
OMP_NUM_THREADS=1 python benchmarks/speed.py --device cpu --sections generate --threads 1
