"""The paper's analyses as a library: what ``tools/analysis/`` and
``tools/demo.py`` run, importable for checking the claims on a model of your own.

One idea per module: :mod:`.branch_cosines` (branch contributions and their
cosines, Fig. 7) and :mod:`.branch_similarity` (of checkpoints, runs and
trainings); :mod:`.scaled_branch_updates` (one SGD step of each
parametrization of sec. 3.4) and :mod:`.optimization_equivalence` (the
comparisons and verdicts); :mod:`.post_addition_norm` (Table 3, last row);
:mod:`.int8_table` (float32 and INT8 of the shipped configs);
:mod:`.demo_data` (the demo digits and recipe), :mod:`.demo_training`
(training any classification config on them), :mod:`.training_records`
(recording hooks), :mod:`.seeds` (results over seeds and their spread);
:mod:`.figures` (matplotlib, imported when drawing),
:mod:`.json_output` (the JSON every command writes) and :mod:`.cli` (shared
arguments). It sits on top of the package, above :mod:`mmorepa.quantization`.
"""
