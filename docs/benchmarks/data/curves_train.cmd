# 2026-12-07, commit 88ba714 (EMA every 4th step, minibatch buffer), 2 CPU cores, 1 torch thread; a 1-thread training ran on the other core for the first 100 s or so, then nothing else:
OMP_NUM_THREADS=1 python benchmarks/curves.py --sections train --models SDD,SDDBlackout --genes 5000,14000,20000 --threads 1 --repeats 3 --steps 4
