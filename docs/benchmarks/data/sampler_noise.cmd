# SDD_SHARED_DATA=../shared/data, seed 0, 1 torch thread, 2 CPU cores shared by two runs; the model of the default recipe (zero_fill="nonzero_mean"), trained 4,000 steps by fidelity.py --rows default-fill --model-dir DIR; calibration on 2,000 cells
python benchmarks/samplers.py --dataset pbmc4k_top2000 --recipe default-fill --threads 1 --model-dir DIR --csv sampler_noise.csv
