#!/usr/bin/env bash
# infertune export for SGLang
# task: smollm2-cpu   model: /models/SmolLM2-135M-Instruct
# measured config: batch_size=16 dtype=bfloat16 quantization=none attn_implementation=sdpa cache_implementation=static compile=True shard_count=2
# measured: tokens_per_s 244.4, latency_p95_s 1.052, top1_agree 0.977, kl 0.00117
# infertune run: tune-optuna-smollm2-cpu-20261126 trial 7   MLflow run: 0123abcd
# WARNING attn_implementation=sdpa: no SGLang equivalent (--attention-backend chooses among SGLang's own kernels); not applied
# WARNING cache_implementation=static: no SGLang equivalent (SGLang always uses its radix KV cache); not applied
python -m sglang.launch_server --model-path /models/SmolLM2-135M-Instruct --tp-size 2 --dtype bfloat16 --max-running-requests 16 --enable-torch-compile
