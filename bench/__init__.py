"""Benchmarks for detstyle: our optimisation loop against faithful re-implementations of the seeds.

Run with `make bench` (full, under 15 min) or `make bench-quick` (256² only, under 3 min);
`python -m bench.run --help` lists the options.  Everything is measured in one process and one
run, because the machine is shared and absolute times move by 2x; the figures that matter are
the ratios (ours / reference) taken side by side.

Modules:
  `yardstick`              the seed-000 (TF tutorial) loss as a pure function of an image:
                           the common measure of "quality" for every method
  `probe`                  the clock and recorder every loop reports to (step times, yardstick
                           checkpoints, stop on target / step / time budget)
  `reference_tutorial`     seed 000: `tf.function` step, Keras Adam(0.02, 0.99, 0.1), [0, 1] image
  `reference_article`      seed 003: eager per-step Python loop, raw-feature style loss, 0..255 image
  `reference_keras_lbfgs`  seed 001: scipy `fmin_l_bfgs_b` + an Evaluator caching loss and grads
  `ours`                   `transfer.core.stylizer.stylize` (+ a bf16 backbone, + L-BFGS / multi-scale
                           as `make_spec` options)
  `images`                 the one content/style pair, at any square size (from ../shared/images;
                           a missing file stops the bench with its path, never a substitute)
  `hardware`               matmul peaks, analytic VGG16 FLOPs, peak RSS, device description
  `report`                 JSON files and the RESULTS.md table
  `run`                    the command line
  `readme`                 the README's benchmark figures, rendered from bench/results/*.json
  `rerender`               RESULTS.md and fast_schedule_*.md re-rendered from their committed JSON
"""
