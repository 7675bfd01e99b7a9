"""`tfcaf tune`: the generator learns from its vetted attempts.

- `model`: the trainable local generator (the shipped SmolLM2 GGUF dequantised into a transformers
  Llama, any local model directory, or a tiny random Llama for tests), LoRA through peft.
- `losses`: rejection-sampling SFT (RFT), TBRM and CORY's KL-regularised policy gradient, as pure
  functions of tensors.
- `data`: rows of a `tfcaf dataset` JSONL file (the issue-9 schema) and their selection.
- `train`: the three training loops and the generator folder `<store>/generators/NAME/`.
- `cli`: `tfcaf tune` and `tfcaf generators`.

Heavy imports (torch, transformers, peft, gguf) happen inside functions.
"""
