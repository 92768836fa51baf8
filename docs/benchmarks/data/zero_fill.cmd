# SDD_SHARED_DATA=../shared/data, seed 0, 4,000 steps, one torch thread per run, 2 CPU cores shared by two to four runs; the rows with DDIM-50/25 reuse the trained model of the default-fill row (--model-dir); calibration on 2,000 cells with calibration seed 1 and generation seed 0 in every row
python benchmarks/fidelity.py --datasets pbmc4k_top2000 --rows default-fill --steps 4000 --threads 1 --model-dir DIR --csv zero_fill.csv
python benchmarks/fidelity.py --datasets pbmc4k_top2000 --rows default-fill-ddim50 default-fill-ddim25 --steps 4000 --threads 1 --model-dir DIR --csv zero_fill.csv
python benchmarks/fidelity.py --datasets cbmc_top2000 --rows default-fill default-fill-ddim50 default-fill-ddim25 --steps 4000 --threads 1 --model-dir DIR --csv zero_fill.csv
python benchmarks/fidelity.py --datasets mouse_bladder_top2000 --rows default-fill default-fill-ddim50 default-fill-ddim25 --steps 4000 --threads 1 --model-dir DIR --csv zero_fill.csv
python benchmarks/fidelity.py --datasets worm_neuron --rows default-fill default-fill-ddim50 default-fill-ddim25 --steps 4000 --threads 1 --model-dir DIR --csv zero_fill.csv
