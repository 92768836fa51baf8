# 2 CPU cores shared with tests and other runs, seed 0; rows renamed "default, N steps" (both runs name their row "default"); the 4,000-step row is the default of the fidelity page
python benchmarks/fidelity.py --datasets pbmc4k_top2000 --rows default --steps 2000 --model-dir DIR --csv steps.csv
python benchmarks/fidelity.py --datasets pbmc4k_top2000 --rows default --steps 8000 --model-dir DIR --csv steps.csv
