"""Fine-tuning: base models, LoRA training, evaluation of the result, GGUF export and quantisation."""
