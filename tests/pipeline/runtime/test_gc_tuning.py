import gc

from pipeline.runtime.gc_tuning import YOUNG_THRESHOLD, tune_for_throughput


def test_start_up_objects_are_frozen_and_passes_are_rarer() -> None:
    before = gc.get_threshold()
    try:
        tune_for_throughput()
        assert gc.get_threshold()[0] == YOUNG_THRESHOLD > before[0]
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
