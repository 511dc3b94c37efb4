"""Shared, public building blocks of the experiment scripts; no script imports another script.

common             provenance stamps, the command line, markdown tables, write_section
results            the scripts' flags, results/*.{md,json} writing, parse_seeds
recipe, zoo        the study recipe and the model zoo
runs, sweep        the one training path: run records (results/runs/), runs.train, job lists
numerics, stats    the numerics fingerprint; paired intervals, Holm
ablation_settings  PikeLPN-1x's ablation settings (ablations, dq_scale_fit, dhq_distribution)
costs, energy_model, search_rows, eval_swap
train_step         the project's real train step, for the benchmarks
input_rate         the input pipeline's steady-state rate (bench_input, device_check)
imagenet_like      generated ImageNet-like data (benchmarks, tests, rehearsals)
pil_preprocess     the superseded PIL input path (reference and baseline)
"""
