"""The HF judge's two scoring paths on real small models: they must agree where they can be compared."""

from __future__ import annotations

import math

import pytest

from eval.judges.hf import FAST, GENERATIVE, HFJudge
from modelcalls.hf_tokens import length_grouped_batches
from rms_dataset import SAFE, UNSAFE


def test_length_grouped_batches_cover_every_index_once_longest_first():
    lengths = [3, 9, 1, 7, 5]
    batches = list(length_grouped_batches(lengths, 2))
    assert batches == [[1, 3], [4, 0], [2]]
    assert sorted(i for batch in batches for i in batch) == list(range(5))
    with pytest.raises(ValueError, match="batch_size"):
        list(length_grouped_batches(lengths, 0))


@pytest.mark.slow
@pytest.mark.parametrize("loaded_fixture", ["tiny_llava_loaded", "smollm2_loaded"])
def test_fast_and_generative_paths_agree(request, loaded_fixture, judge_examples):
    """Honest comparison of the two paths on the same model and prompts.

    1. Generation's first step sees exactly the fast path's input, so its label-token distribution must
       equal the fast path's p_unsafe, item by item (checks batching, padding and order restoration).
    2. Where generation's first token IS a label token, greedy decoding picked the likelier label, so the
       parsed verdict must equal the fast verdict. Elsewhere (the model starts with other words) the paths
       are not comparable and we only require the parse to be counted, not dropped.
    """
    loaded = request.getfixturevalue(loaded_fixture)
    fast = HFJudge(loaded, mode=FAST, batch_size=4).score(judge_examples)
    generative = HFJudge(loaded, mode=GENERATIVE, batch_size=4, max_new_tokens=4).score(judge_examples)

    assert len(fast) == len(generative) == len(judge_examples)
    for f, g in zip(fast, generative):
        assert f.label in (SAFE, UNSAFE) and 0.0 <= f.p_unsafe <= 1.0
        assert math.isclose(f.p_unsafe, g.extras["first_step_p_unsafe"], abs_tol=2e-3)
        assert g.raw_text is not None
        if g.extras["first_token_is_label"]:
            assert g.label == f.label


@pytest.mark.slow
def test_fast_path_is_independent_of_batching_and_order(tiny_llava_loaded, judge_examples):
    """Left padding + length grouping must not change any item's score."""
    examples = judge_examples[:4]  # includes the example without an image
    one_by_one = HFJudge(tiny_llava_loaded, mode=FAST, batch_size=1).score(examples)
    batched = HFJudge(tiny_llava_loaded, mode=FAST, batch_size=4).score(list(reversed(examples)))
    for single, together in zip(one_by_one, reversed(batched)):
        assert math.isclose(single.p_unsafe, together.p_unsafe, abs_tol=2e-3)


@pytest.mark.slow
def test_judge_id_changes_with_scoring_path(tiny_llava_loaded):
    fast = HFJudge(tiny_llava_loaded, mode=FAST)
    generative = HFJudge(tiny_llava_loaded, mode=GENERATIVE)
    assert fast.judge_id != generative.judge_id
    assert fast.judge_id == HFJudge(tiny_llava_loaded, mode=FAST, batch_size=2).judge_id  # batch size is not identity


def test_unknown_mode_is_rejected(tiny_llava_loaded):
    with pytest.raises(ValueError, match="unknown scoring mode"):
        HFJudge(tiny_llava_loaded, mode="sampling")


@pytest.mark.slow
def test_verdicts_agree_when_the_judge_answers_with_a_label_first(tiny_llava_loaded, judge_examples):
    """The zero-shot tiny model starts with other words ("The image is not safe..."), so the agreement
    check above compares no verdicts. Make it a verdict-first judge, as a trained judge is, by adding the
    same constant to both label tokens' logits (a hook on the output head): the safe/unsafe ratio, hence
    the fast p_unsafe, is unchanged, and greedy generation now starts with a label token (only the first
    step is boosted: "unsafe" is two tokens, "uns" + "afe", and the model must finish the word itself)."""
    from judging.format import verdict_token_ids

    tokens = verdict_token_ids(tiny_llava_loaded.tokenizer)
    plain = HFJudge(tiny_llava_loaded, mode=FAST).score(judge_examples)

    def boost_labels_at_first_step(module, args, kwargs, output):
        if kwargs["input_ids"].shape[1] > 1:  # the whole prompt: the fast pass, or generation's first step
            output.logits[..., [tokens.safe, tokens.unsafe]] += 50.0
        return output

    handle = tiny_llava_loaded.model.register_forward_hook(boost_labels_at_first_step, with_kwargs=True)
    try:
        fast = HFJudge(tiny_llava_loaded, mode=FAST, batch_size=3).score(judge_examples)
        generative = HFJudge(tiny_llava_loaded, mode=GENERATIVE, batch_size=3, max_new_tokens=3).score(judge_examples)
    finally:
        handle.remove()

    for before, after in zip(plain, fast):
        assert math.isclose(before.p_unsafe, after.p_unsafe, abs_tol=2e-3)
    compared = [(f, g) for f, g in zip(fast, generative) if g.extras["first_token_is_label"]]
    assert len(compared) == len(judge_examples)
    assert [g.label for f, g in compared] == [f.label for f, g in compared]


@pytest.mark.slow
def test_zero_shot_fast_cell_is_flagged_format_mismatch_and_generative_keeps_auroc(tmp_path, smollm2_loaded,
                                                                                   binary_benchmark):
    """Observed: zero-shot rows were scored fast, so a model that writes prose ("To determine the safety...")
    got verdicts it never produced and 0 unparseable. The fast path now reports the probability mass on the
    label tokens (flagged below FORMAT_MISMATCH_MASS); the generative path keeps AUROC from the first step."""
    from eval.cell import evaluate
    from eval.spec import BenchmarkSpec
    from judging.format import FORMAT_MISMATCH_MASS

    spec = BenchmarkSpec(name="eval_fixture", options={"annotations": str(binary_benchmark)}, limit=6)
    fast = evaluate(HFJudge(smollm2_loaded, mode=FAST, batch_size=6), spec, tmp_path, n_bootstrap=0)
    assert fast["mode"] == FAST and 0.0 < fast["label_mass"] < FORMAT_MISMATCH_MASS and fast["format_mismatch"]
    generative = evaluate(HFJudge(smollm2_loaded, mode=GENERATIVE, batch_size=6, max_new_tokens=4), spec, tmp_path,
                          n_bootstrap=0)
    assert generative["mode"] == GENERATIVE and generative["label_mass"] is None
    assert generative["metrics"]["auroc"] is not None  # from the first step's p_unsafe
    assert generative["metrics"]["auroc"] == pytest.approx(fast["metrics"]["auroc"], abs=1e-6)


def test_zero_shot_grid_rows_are_generative_unless_told_otherwise():
    from eval.grid import judge_options
    from eval.grid_config import BaseModel, Grid, GridJudgeOptions, Run, TrainingDataset

    def grid(**judge):
        return Grid("g", [], [], [], GridJudgeOptions(**judge))

    zero, trained = TrainingDataset("base", zero_shot=True), TrainingDataset("d", sources=[{"name": "rms"}])
    model = BaseModel("m", "recipe.yaml")
    zero_shot = judge_options(grid(mode="fast", batch_size=4), Run(zero, 1.0, model))
    assert (zero_shot.mode, zero_shot.batch_size) == ("generative", 4)
    assert judge_options(grid(mode="fast"), Run(trained, 1.0, model)).mode == "fast"
    assert judge_options(grid(mode="fast", zero_shot_mode="fast"), Run(zero, 1.0, model)).mode == "fast"
