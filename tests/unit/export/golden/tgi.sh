#!/usr/bin/env bash
# infertune export for TGI
# task: meta-llama-3-8b-instruct-gpu   model: /models/Meta-Llama-3-8B-Instruct
# measured config: batch_size=16 dtype=bfloat16 quantization=none attn_implementation=sdpa cache_implementation=static compile=True shard_count=2
# measured: tokens_per_s 244.4, latency_p95_s 1.052, ttft_s 0.031, tpot_s 0.0042, top1_agree 0.977, kl 0.00117, peak_mem_mb 16544
# infertune run: tune-optuna-20261126 trial 7   MLflow run: 0123abcd
# infertune measured batch_size as a static batch (all sequences start and stop together); this stack batches continuously, so the value below caps concurrent sequences instead (max-concurrent-requests, max-batch-size).
# WARNING attn_implementation=sdpa: no TGI equivalent (TGI picks flash/paged attention itself); not applied
# WARNING cache_implementation=static: no TGI equivalent (TGI always uses its paged KV cache); not applied
# the launcher reads these variables; the same as flags:
#   text-generation-launcher --model-id /models/Meta-Llama-3-8B-Instruct --num-shard 2 --max-concurrent-requests 16 --max-batch-size 16 --dtype bfloat16
export MODEL_ID=/models/Meta-Llama-3-8B-Instruct
export NUM_SHARD=2
export MAX_CONCURRENT_REQUESTS=16
export MAX_BATCH_SIZE=16
export DTYPE=bfloat16
exec text-generation-launcher "$@"
