"""The training-cost benchmark (``tools/analysis/benchmark_training.py``).

Split by concern: :mod:`.models` (what is trained, one step), :mod:`.reference`
(the direct OREPA implementation compared against), :mod:`.measure` (timing
and memory), :mod:`.worker` (one measurement per process), :mod:`.suite` (the
plan of jobs) and :mod:`.report` (ratios, tables, plot, JSON). It sits on top
of the package, beside the tools.
"""
