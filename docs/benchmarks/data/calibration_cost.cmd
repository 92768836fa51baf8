# SDD_SHARED_DATA=../shared/data, seed 0, 1 torch thread, 2 CPU cores shared by three to four runs (times: compare within the table); the model of the default recipe trained 4,000 steps (fidelity.py --rows default-fill --model-dir DIR)
python benchmarks/calibration_cost.py --dataset pbmc4k_top2000 --recipe default-fill --threads 1 --model-dir DIR --csv calibration_cost.csv
