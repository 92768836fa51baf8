# every run: SDD_SHARED_DATA=../shared/data, 2 CPU cores shared by the runs, seed 0;
# one trained model per data set (--model-dir), reused by every decoding row
python benchmarks/fidelity.py --datasets pbmc4k_top2000 --rows floor default default-genes uncalibrated scvi --steps 4000 --model-dir DIR --csv new.csv
python benchmarks/fidelity.py --datasets pbmc4k_top2000 --rows floor default default-nototals default-dpm25 default-dpm10 scvi --steps 4000 --model-dir DIR --csv tuning.csv   # while calibrate(match_totals=True) was the default: its default / dpm rows are renamed to say so
python benchmarks/fidelity.py --datasets cbmc_top2000 --rows floor uncalibrated scvi --steps 4000 --model-dir DIR --csv heldout.csv
python benchmarks/fidelity.py --datasets cbmc_top2000 --rows default --steps 4000 --model-dir DIR --csv heldout.csv
python benchmarks/fidelity.py --datasets mouse_bladder_top2000 --rows floor default uncalibrated scvi --steps 4000 --model-dir DIR --csv heldout.csv   # alone on the 2 cores
python benchmarks/fidelity.py --datasets worm_neuron --rows floor default uncalibrated scvi --steps 4000 --model-dir DIR --csv heldout.csv   # this round, same code as the rows above, 2 cores shared with tests
# the default changed after the rows above (zero_fill="nonzero_mean", calibration and generation with DDIM-25 on 2,000 cells): their "default" rows are renamed "previous-default" (= fidelity.py --rows previous-default)
python benchmarks/fidelity.py --datasets pbmc4k_top2000 cbmc_top2000 mouse_bladder_top2000 worm_neuron --rows default --steps 4000 --threads 1 --model-dir DIR --csv fidelity.csv   # the new default on the models trained by zero_fill.cmd's default-fill rows (the same training): calibration and generation only, 1 torch thread, cores shared; it reproduces the default-fill-ddim25 rows of zero_fill.csv to the last digit
# calibrate() then generated 1,500 cells by default instead of 2,000 (chosen on the tuning set: calibration_cells.csv); the default rows were re-run with it on the same models (2026-12-07, 1 torch thread, 2 cores shared with two other runs):
python benchmarks/fidelity.py --datasets pbmc4k_top2000 cbmc_top2000 mouse_bladder_top2000 worm_neuron --rows default --steps 4000 --threads 1 --model-dir DIR --csv fidelity.csv
