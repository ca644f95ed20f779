#!/usr/bin/env bash
# infertune export for TGI
# task: meta-llama-3-8b-instruct-gpu   model: /models/Meta-Llama-3-8B-Instruct
# measured config: batch_size=8 dtype=float16 quantization=int8-weight-only attn_implementation=sdpa cache_implementation=dynamic compile=False shard_count=1
# measured: tokens_per_s 244.4, latency_p95_s 1.052, ttft_s 0.031, tpot_s 0.0042, top1_agree 0.977, kl 0.00117, peak_mem_mb 16544
# infertune run: tune-optuna-20261126 trial 7   MLflow run: 0123abcd
# infertune measured batch_size as a static batch (all sequences start and stop together); this stack batches continuously, so the value below caps concurrent sequences instead (max-concurrent-requests, max-batch-size).
# WARNING dtype=float16: TGI does not take --dtype together with --quantize; not applied
# WARNING attn_implementation=sdpa: no TGI equivalent (TGI picks flash/paged attention itself); not applied
# WARNING cache_implementation=dynamic: no TGI equivalent (TGI always uses its paged KV cache); not applied
# the launcher reads these variables; the same as flags:
#   text-generation-launcher --model-id /models/Meta-Llama-3-8B-Instruct --num-shard 1 --max-concurrent-requests 8 --max-batch-size 8 --quantize eetq --cuda-graphs 0
export MODEL_ID=/models/Meta-Llama-3-8B-Instruct
export NUM_SHARD=1
export MAX_CONCURRENT_REQUESTS=8
export MAX_BATCH_SIZE=8
export QUANTIZE=eetq
export CUDA_GRAPHS=0
exec text-generation-launcher "$@"
