import gc

from pipeline.runtime.gc_tuning import YOUNG_THRESHOLD, tune_for_throughput


def test_start_up_objects_are_frozen_and_passes_are_rarer() -> None:
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)  # CPython's defaults: a CLI test may have tuned already
    try:
        tune_for_throughput()
        assert gc.get_threshold()[0] == YOUNG_THRESHOLD > 700
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
