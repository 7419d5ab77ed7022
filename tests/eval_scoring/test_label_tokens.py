"""Verdict tokens come from the model's own chat template: each label rendered as the assistant's answer,
tokenized, and read at the first token where the renderings differ.

Observed before: `verdict_token_ids` encoded the bare words "safe"/"unsafe", but LLaVA-1.5 (``ASSISTANT:
{text}``) and Idefics3 (``Assistant: {text}``) write the answer after a space, so the judges trained by
those recipes answer with `` safe``/`` unsafe``, other tokens; the fast path read the wrong logits."""

from __future__ import annotations

import copy
import math

import pytest

from judging.format import verdict_token_ids
from modelcalls.hf_tokens import answer_tokens

LLAVA_15 = ("{% for m in messages %}{% if m['role'] == 'system' %}{{ m['content'] }} {% elif m['role'] == 'user' %}"
            "USER: {{ m['content'] }} {% else %}ASSISTANT: {{ m['content'] }}</s>{% endif %}{% endfor %}"
            "{% if add_generation_prompt %}ASSISTANT:{% endif %}")
IDEFICS3 = ("<|im_start|>{% for m in messages %}{{ m['role'] | capitalize }}: {{ m['content'] }}<end_of_utterance>\n"
            "{% endfor %}{% if add_generation_prompt %}Assistant:{% endif %}")
SPACE_AFTER_PROMPT = "{% for m in messages %}{{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}Answer: {% endif %}"


@pytest.fixture(scope="module")
def smollm2_tokenizer():
    from transformers import AutoTokenizer

    from local_models import resolve_model

    return AutoTokenizer.from_pretrained(resolve_model("smollm2"))


def with_template(tokenizer, template):
    other = copy.deepcopy(tokenizer)
    other.chat_template = template
    return other


def tokens(tokenizer, label_tokens):
    return tokenizer.convert_ids_to_tokens(list(label_tokens.ids))


def test_chatml_answers_right_after_the_newline(smollm2_tokenizer):
    found = verdict_token_ids(smollm2_tokenizer)
    assert tokens(smollm2_tokenizer, found) == ["safe", "uns"] and found.prefix_ids == ()


@pytest.mark.parametrize("template", [LLAVA_15, IDEFICS3], ids=["llava-1.5", "idefics3"])
def test_templates_with_a_space_before_the_answer_read_the_space_prefixed_tokens(smollm2_tokenizer, template):
    tokenizer = with_template(smollm2_tokenizer, template)
    found = verdict_token_ids(tokenizer)
    assert tokens(tokenizer, found) == ["Ġsafe", "Ġunsafe"]
    bare = (tokenizer.encode("safe", add_special_tokens=False)[0], tokenizer.encode("unsafe", add_special_tokens=False)[0])
    assert found.ids != bare  # what the old encoding of the bare words read


def test_a_generation_prompt_that_does_not_tokenize_as_a_prefix_is_refused(smollm2_tokenizer):
    tokenizer = with_template(smollm2_tokenizer, SPACE_AFTER_PROMPT)  # "Answer: " + "safe" merges into " safe"
    with pytest.raises(ValueError, match="not tokenize as a prefix.*use the generative path"):
        verdict_token_ids(tokenizer)


def test_answers_sharing_leading_tokens_are_read_after_the_shared_part(smollm2_tokenizer):
    messages = [{"role": "user", "content": "Is it safe?"}]
    found = answer_tokens(smollm2_tokenizer, smollm2_tokenizer, messages, ("unsafe", "unsure"))
    assert smollm2_tokenizer.convert_ids_to_tokens(list(found.prefix_ids)) == ["uns"]
    assert smollm2_tokenizer.convert_ids_to_tokens(list(found.ids.values())) == ["afe", "ure"]


@pytest.fixture(scope="module")
def sentencepiece_tokenizer(tmp_path_factory):
    """A real SentencePiece unigram model trained here on a few sentences, in a transformers tokenizer with
    SentencePiece's ``▁`` (Metaspace) pre-tokenization, and the processor itself as ground truth."""
    import sentencepiece as spm
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("sp")
    corpus = ["Is it safe to cross the road here?", "This is unsafe, do not do it.", "The answer is safe.",
              "USER: What should I do? ASSISTANT: safe", "USER: Can I climb this? ASSISTANT: unsafe",
              "safe unsafe safety harmless harmful", "A safety judge for a vision-language assistant."] * 40
    (folder / "corpus.txt").write_text("\n".join(corpus))
    spm.SentencePieceTrainer.train(input=str(folder / "corpus.txt"), model_prefix=str(folder / "sp"), vocab_size=50,
                                   model_type="unigram", character_coverage=1.0, bos_id=1, eos_id=2, unk_id=0,
                                   pad_id=-1, minloglevel=2)
    processor = spm.SentencePieceProcessor(model_file=str(folder / "sp.model"))
    vocab = [(processor.id_to_piece(i), processor.get_score(i)) for i in range(processor.get_piece_size())]
    backend = Tokenizer(models.Unigram(vocab, unk_id=processor.unk_id()))
    backend.normalizer = normalizers.Replace(" ", "▁")
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)
    backend.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first", split=False)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", bos_token="<s>", eos_token="</s>")
    return tokenizer, processor


@pytest.mark.parametrize("template", [LLAVA_15, IDEFICS3.replace("\n", " ")], ids=["llava-1.5", "idefics3"])
def test_sentencepiece_tokens_match_what_sentencepiece_itself_writes(sentencepiece_tokenizer, template):
    """Ground truth from the sentencepiece library on the same rendered text (one line: SentencePiece
    normalises newlines, which the transformers wrapper here does not imitate)."""
    tokenizer, processor = sentencepiece_tokenizer
    tokenizer = with_template(tokenizer, template)
    messages = [{"role": "user", "content": "Is it safe to cross the road here?"}]
    found = verdict_token_ids(tokenizer, messages=messages)
    truth = {}
    for label in ("safe", "unsafe"):
        text = tokenizer.apply_chat_template([*messages, {"role": "assistant", "content": label}], tokenize=False)
        text = text.removesuffix("</s>").rstrip()  # "</s>": special for the wrapper; sentencepiece drops a final space
        assert tokenizer.tokenize(text) == processor.encode(text, out_type=str)  # the wrapper is faithful
        truth[label] = processor.encode(text)
    position = next(i for i, (a, b) in enumerate(zip(truth["safe"], truth["unsafe"])) if a != b)
    assert found.ids == (truth["safe"][position], truth["unsafe"][position])
    assert tokens(tokenizer, found) == ["▁safe", "▁unsafe"]  # the answer's space is SentencePiece's "▁"
    bare = (tokenizer.encode("safe", add_special_tokens=False), tokenizer.encode("unsafe", add_special_tokens=False))
    assert found.prefix_ids == () and all(ids for ids in bare)


@pytest.mark.slow
def test_fast_path_reads_the_template_tokens_and_reports_label_mass(smollm2_loaded, judge_examples):
    """End to end on SmolLM2 under a LLaVA-1.5-style template: p_unsafe and the label mass are those of the
    `` safe``/`` unsafe`` logits at the last prompt position."""
    import torch

    from eval.judges.hf import FAST, HFJudge
    from modelcalls.hf_tokens import render_chat as render_prompt

    loaded = copy.copy(smollm2_loaded)
    loaded.tokenizer = loaded.processor = with_template(smollm2_loaded.tokenizer, LLAVA_15)
    judge = HFJudge(loaded, mode=FAST, batch_size=3)
    predictions = judge.score(judge_examples[:3])
    safe, unsafe = (loaded.tokenizer.encode(word, add_special_tokens=False)[0] for word in (" safe", " unsafe"))
    assert judge.verdict_tokens.ids == (safe, unsafe)
    for example, prediction in zip(judge_examples[:3], predictions):
        ids = loaded.tokenizer(render_prompt(loaded, judge.format.build_messages(example)), return_tensors="pt",
                               add_special_tokens=False)
        with torch.inference_mode():
            probabilities = loaded.model(**ids).logits[0, -1].float().softmax(-1)
        expected = float(probabilities[unsafe] / (probabilities[safe] + probabilities[unsafe]))
        assert math.isclose(prediction.p_unsafe, expected, abs_tol=2e-3)
        assert math.isclose(prediction.extras["label_mass"], float(probabilities[safe] + probabilities[unsafe]),
                            rel_tol=1e-2, abs_tol=1e-6)
