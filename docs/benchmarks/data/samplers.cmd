# 2 CPU cores shared with tests, seed 0; the default model of the fidelity page (--model-dir)
python benchmarks/fidelity.py --datasets pbmc4k_top2000 --rows default-dpm25 default-dpm10 default-ddim50 --steps 4000 --model-dir DIR --csv samplers.csv
