"""The `preference` config is TRL's vision preference format: DPOTrainer trains on it as loaded, no mapping."""

import datasets
import pytest

import rms_dataset as rms


def test_the_preference_config_is_the_pairs_with_their_guidance_chosen_and_unsafe_response_rejected(small_release):
    pairs = datasets.load_dataset(str(small_release), rms.PAIRS, split="train")
    safe = {row["pair_id"]: row["response"] for row in datasets.load_dataset(str(small_release), rms.SAFE_RESPONSES, split="train")}
    unsafe = {row["pair_id"]: row["response"] for row in datasets.load_dataset(str(small_release), rms.UNSAFE_RESPONSES, split="train")}
    preference = datasets.load_dataset(str(small_release), rms.PREFERENCE, split="train")
    assert len(preference) == len(pairs)
    by_pair = {row["pair_id"]: row for row in preference}
    for pair in pairs:
        row = by_pair[pair["id"]]
        assert row["prompt"] == [{"role": "user", "content": pair["text"]}]
        assert row["chosen"] == [{"role": "assistant", "content": safe[pair["id"]]}]
        assert row["rejected"] == [{"role": "assistant", "content": unsafe[pair["id"]]}]
        assert row["image_id"] == pair["image_id"] and row["image"].size == pair["image"].size


@pytest.fixture
def one_thread():
    """One torch thread: on a shared 2-core machine more threads only spin (10x the CPU time, same result)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow
def test_dpo_trains_a_few_steps_straight_from_the_release(small_release, tmp_path, one_thread):
    from transformers import AutoModelForImageTextToText, AutoProcessor
    from trl import DPOConfig, DPOTrainer

    from local_models import tiny_llava_path

    preference = datasets.load_dataset(str(small_release), rms.PREFERENCE, split="train").select(range(2))
    model_dir = tiny_llava_path()
    args = DPOConfig(output_dir=str(tmp_path / "dpo"), max_steps=2, per_device_train_batch_size=1, learning_rate=1e-5,
                     max_length=64, gradient_checkpointing=False, use_cpu=True, report_to=[], save_strategy="no",
                     logging_steps=1, disable_tqdm=True)
    trainer = DPOTrainer(model=AutoModelForImageTextToText.from_pretrained(model_dir), args=args,
                         train_dataset=preference, processing_class=AutoProcessor.from_pretrained(model_dir))
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert trainer.state.global_step == 2 and len(losses) == 2
    assert losses[0] == pytest.approx(0.6931, abs=1e-3)  # log(2): policy and reference agree before the first step
