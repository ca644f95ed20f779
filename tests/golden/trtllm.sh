#!/usr/bin/env bash
# infertune export for TensorRT-LLM
# task: smollm2-cpu   model: /models/SmolLM2-135M-Instruct
# measured config: batch_size=16 dtype=bfloat16 quantization=none attn_implementation=sdpa cache_implementation=static compile=True shard_count=2
# measured: tokens_per_s 244.4, latency_p95_s 1.052, top1_agree 0.977, kl 0.00117
# infertune run: tune-optuna-smollm2-cpu-20261126 trial 7   MLflow run: 0123abcd
# infertune measured batch_size as a static batch (all sequences start and stop together); this stack batches continuously, so the value below caps concurrent sequences instead (max_batch_size).
# WARNING attn_implementation=sdpa: no TensorRT-LLM equivalent (TensorRT-LLM uses its own attention plugin); not applied
# WARNING cache_implementation=static: no TensorRT-LLM equivalent (TensorRT-LLM always uses its paged KV cache); not applied
# WARNING compile=True: no TensorRT-LLM equivalent (the engine is compiled ahead of time, whatever this knob says); not applied
trtllm-serve /models/SmolLM2-135M-Instruct --config trtllm.yaml
