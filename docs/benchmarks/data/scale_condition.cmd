# at commit ee369b8 (SDD(scale_bins=), removed again after this negative result), 2 CPU cores shared with tests, seed 0
python benchmarks/fidelity.py --datasets pbmc4k_top2000 --rows default-scale4 --steps 4000 --model-dir DIR --csv scale_condition.csv
