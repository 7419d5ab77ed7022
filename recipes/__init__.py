"""QLoRA fine-tuning of vision-language safety judges (see docs/recipes.md).

``config`` (the recipe YAML parsed into trl's ModelConfig and SFTConfig plus a typed data block),
``architectures`` (the registry of vision-language architectures: processors, tokens, template quirks, LoRA
targets, meta-device checks), ``tiny`` (``--tiny``: small random models of those architectures), ``data``
(sources -> balanced training rows, images kept as their bytes), ``model`` (4-bit loading, LoRA config),
``train`` (the SFTTrainer run and the ``train(recipe, overrides) -> TrainResult`` entry point), ``metadata``
(``judge_metadata.json``).
"""

from modelcalls.hf_loading import quiet_bitsandbytes_kernel_notice

quiet_bitsandbytes_kernel_notice()  # before trl and peft import bitsandbytes (see that function)
