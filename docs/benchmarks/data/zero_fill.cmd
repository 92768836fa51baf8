# SDD_SHARED_DATA=../shared/data, seed 0, 4,000 steps; 2 CPU cores shared by two runs (one torch thread each on the held-out sets)
python benchmarks/fidelity.py --datasets pbmc4k_top2000 --rows default-fill --steps 4000 --threads 1 --model-dir DIR --csv zero_fill.csv
