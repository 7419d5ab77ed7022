"""QLoRA fine-tuning of vision-language safety judges (see docs/recipes.md).

``config`` (typed YAML recipe), ``architectures`` (known base models, meta-device LoRA target checks),
``data`` (sources -> balanced training rows), ``model`` (4-bit loading, LoRA config), ``train`` (the
SFTTrainer run and the ``train(recipe, overrides) -> TrainResult`` entry point), ``metadata``
(``judge_metadata.json``).
"""
