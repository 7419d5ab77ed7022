"""Predictions go into the one call cache as they are scored, and an interrupted evaluation resumes."""

from __future__ import annotations

import pytest

from eval.predictions import CACHE_FILE, call_cache, score_cached

from .conftest import KeywordJudge, SeesImageJudge


def test_second_run_scores_nothing_and_returns_the_same_predictions(tmp_path, judge_examples):
    judge = KeywordJudge()
    first = score_cached(judge, judge_examples, tmp_path)
    again = KeywordJudge()
    second = score_cached(again, judge_examples, tmp_path)
    assert again.scored == []
    assert [item.prediction for item in second] == [item.prediction for item in first]
    with call_cache(tmp_path) as cache:  # one answer per item, in the one cache file of the folder
        assert len(cache) == len(judge_examples) and cache.path == tmp_path / CACHE_FILE


def test_interrupted_run_resumes_with_only_the_missing_items(tmp_path, judge_examples):
    class CrashingJudge(KeywordJudge):
        def score(self, examples):
            if len(self.scored) >= 2:
                raise KeyboardInterrupt("simulated interruption")
            return super().score(examples)

    crashing = CrashingJudge()
    with pytest.raises(KeyboardInterrupt):
        score_cached(crashing, judge_examples, tmp_path, chunk_size=2)
    resumed = KeywordJudge()
    items = score_cached(resumed, judge_examples, tmp_path, chunk_size=2)
    assert resumed.scored == [example.source_id for example in judge_examples[2:]]
    assert [item.example.source_id for item in items] == [example.source_id for example in judge_examples]
    assert all(item.prediction.label is not None for item in items)


def test_duplicate_ids_are_refused(tmp_path, judge_examples):
    with pytest.raises(ValueError, match="occurs twice"):
        score_cached(KeywordJudge(), [judge_examples[0], judge_examples[0]], tmp_path)


# ----------------------------------------------------------- content-addressed: each observed collision


def test_figstep_scored_without_then_with_images_is_scored_again(tmp_path):
    """Observed: FigStep-Tiny scored without its images gave 0.0; adding the images and rescoring with the
    same cache still gave 0.0, every prediction reused. The image hash is part of the key now."""
    from dataclasses import replace

    from judging.sources.registry import get_source

    with_images = [e for e in get_source("figstep", subset="tiny").examples() if e.image is not None]
    assert len(with_images) >= 10
    without = [replace(example, image=None) for example in with_images]
    judge = SeesImageJudge()
    first = score_cached(judge, without, tmp_path)
    assert {item.prediction.label for item in first} == {"safe"}
    again = SeesImageJudge()
    second = score_cached(again, with_images, tmp_path)
    assert again.scored == [example.source_id for example in with_images]  # nothing reused
    assert {item.prediction.label for item in second} == {"unsafe"}
    assert score_cached(SeesImageJudge(), with_images, tmp_path)[0].prediction.label == "unsafe"  # now cached


def test_same_id_with_different_text_is_never_served_the_old_prediction(tmp_path, judge_examples):
    """Observed: MSSBench with paraphrases=true after false reused 4 of 20 predictions made for other text
    (same index-based id). Any change of the rendered prompt changes the key."""
    from dataclasses import replace

    judge = KeywordJudge()
    score_cached(judge, judge_examples, tmp_path)
    reworded = [replace(judge_examples[0], text="Where can I buy a fire extinguisher?"), *judge_examples[1:]]
    again = KeywordJudge()
    score_cached(again, reworded, tmp_path)
    assert again.scored == [judge_examples[0].source_id]


def test_mssbench_paraphrases_after_single_instructions_reuse_only_identical_items(tmp_path):
    from dataclasses import replace

    from judging.sources.registry import get_source

    def load(paraphrases):  # the shared excerpt has no images: score text-only, as the --text-only mode does
        return [replace(e, image=None) for e in get_source("mssbench", paraphrases=paraphrases).examples()]

    single, paraphrased = load(False), load(True)
    score_cached(KeywordJudge(), single, tmp_path)
    again = KeywordJudge()
    items = score_cached(again, paraphrased, tmp_path)
    before = {(e.source_id, e.text) for e in single}
    rescored = set(again.scored)
    for example in paraphrased:
        assert (example.source_id in rescored) == ((example.source_id, example.text) not in before)
    assert rescored and len(rescored) < len(paraphrased)  # some items are shared, some are new
    assert all(item.prediction.raw_text in ("safe", "unsafe") for item in items)


def test_judge_fingerprint_changes_invalidate(tmp_path, judge_examples):
    """A different judge description (another adapter, mode, decoding) never reads another's predictions."""
    score_cached(KeywordJudge(), judge_examples, tmp_path)
    other = KeywordJudge(answer="unsafe")
    score_cached(other, judge_examples, tmp_path)
    assert other.scored == [example.source_id for example in judge_examples]


def test_image_hash_reads_pixels_and_bytes_not_names(tmp_path, photo_paths):
    from PIL import Image

    from eval.judges.images import NO_IMAGE, image_sha256

    copy = tmp_path / "renamed.jpg"
    copy.write_bytes(photo_paths[0].read_bytes())
    assert image_sha256(str(copy)) == image_sha256(str(photo_paths[0])) != image_sha256(str(photo_paths[1]))
    assert image_sha256(None) == NO_IMAGE
    red, blue = Image.new("RGB", (4, 4), "red"), Image.new("RGB", (4, 4), "blue")
    assert image_sha256(red) != image_sha256(blue) and image_sha256(red) == image_sha256(red.copy())


@pytest.mark.slow
def test_a_rerun_makes_no_model_call_and_a_retrained_adapter_scores_again(tmp_path, smollm2_loaded, judge_examples):
    """The local judge's answers go through the one call cache: a rerun of the same cell is served from it
    without a forward pass; the same model with other adapter weights (another fingerprint) is asked again."""
    import copy

    from eval.judges.hf import FAST, HFJudge

    judge = HFJudge(smollm2_loaded, mode=FAST, batch_size=4)
    first = score_cached(judge, judge_examples, tmp_path)
    assert sum(judge.backend.batches_run) == len(judge_examples)
    rerun = HFJudge(smollm2_loaded, mode=FAST, batch_size=4)
    assert [item.prediction for item in score_cached(rerun, judge_examples, tmp_path)] == [i.prediction for i in first]
    assert rerun.backend.batches_run == []  # no model call
    retrained = copy.copy(smollm2_loaded)
    retrained.fingerprint = {**smollm2_loaded.fingerprint, "adapter_sha256": "retrained-weights"}
    judge = HFJudge(retrained, mode=FAST, batch_size=4)
    score_cached(judge, judge_examples, tmp_path)
    assert sum(judge.backend.batches_run) == len(judge_examples)
