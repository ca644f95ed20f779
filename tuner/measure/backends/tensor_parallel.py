"""Split a decoder-only model's attention (by KV-head groups) and MLP across tensor-parallel ranks.

Megatron-style: q/k/v and gate/up are split by output rows, o_proj and down_proj by input columns and
summed across ranks with an all-reduce. The split follows KV-head groups and may be uneven (SmolLM2's
3 KV heads over 2 ranks: 2 + 1), which transformers' ``tp_plan`` cannot do: it needs every head count
divisible by the shard count. Embeddings, norms and the LM head stay replicated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from tuner.measure.backends.infeasible import Infeasible

ATTENTION_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP_PROJECTIONS = ("gate_proj", "up_proj", "down_proj")


def even_ranges(total: int, parts: int) -> list[tuple[int, int]]:
    """Contiguous [start, end) ranges covering ``total`` items, sizes differing by at most one."""
    base, extra = divmod(total, parts)
    ranges, start = [], 0
    for index in range(parts):
        size = base + (1 if index < extra else 0)
        ranges.append((start, start + size))
        start += size
    return ranges


@dataclass(frozen=True)
class ShardPlan:
    """Which heads and MLP rows one rank owns."""

    rank: int
    world: int
    kv_heads: tuple[int, int]
    q_heads: tuple[int, int]
    mlp_rows: tuple[int, int]
    head_dim: int


def plan_shard(config: Any, rank: int, world: int) -> ShardPlan:
    """The slice of ``config``'s model that ``rank`` of ``world`` holds; Infeasible when it cannot be split."""
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    if kv_heads < world:
        raise Infeasible(f"shard_count {world} exceeds the model's {kv_heads} key/value heads "
                         "(each shard needs at least one)")
    group = heads // kv_heads
    kv_start, kv_end = even_ranges(kv_heads, world)[rank]
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    return ShardPlan(rank, world, (kv_start, kv_end), (kv_start * group, kv_end * group),
                     even_ranges(config.intermediate_size, world)[rank], head_dim)


class AllReduceSum(nn.Module):
    """Wraps a row-split linear layer: each rank's partial output, summed over the group."""

    def __init__(self, inner: nn.Module, group: Any = None):
        super().__init__()
        self.inner = inner
        self.group = group

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        from torch.distributed import _functional_collectives as collectives

        # Functional collectives trace under torch.compile; in-place dist.all_reduce would break the graph.
        return collectives.wait_tensor(collectives.all_reduce(self.inner(hidden), "sum", self.group or
                                                              torch.distributed.group.WORLD))


def _rows(linear: nn.Linear, start: int, end: int, keep_bias: bool = True) -> nn.Linear:
    piece = nn.Linear(linear.in_features, end - start, bias=linear.bias is not None and keep_bias,
                      device=linear.weight.device, dtype=linear.weight.dtype)
    with torch.no_grad():
        piece.weight.copy_(linear.weight[start:end])
        if piece.bias is not None:
            piece.bias.copy_(linear.bias[start:end])
    return piece


def _columns(linear: nn.Linear, start: int, end: int, keep_bias: bool) -> nn.Linear:
    piece = nn.Linear(end - start, linear.out_features, bias=linear.bias is not None and keep_bias,
                      device=linear.weight.device, dtype=linear.weight.dtype)
    with torch.no_grad():
        piece.weight.copy_(linear.weight[:, start:end])
        if piece.bias is not None:
            piece.bias.copy_(linear.bias)
    return piece


def shard_model(model: nn.Module, rank: int, world: int) -> dict[str, Any]:
    """Replace every decoder layer's projections by this rank's slices, in place; returns what was split."""
    plan = plan_shard(model.config, rank, world)
    layers = [module for module in model.modules()
              if all(hasattr(getattr(module, "self_attn", None), name) for name in ATTENTION_PROJECTIONS)
              and all(hasattr(getattr(module, "mlp", None), name) for name in MLP_PROJECTIONS)]
    if not layers:
        raise Infeasible(f"{type(model).__name__} has no q/k/v/o + gate/up/down projections to split "
                         "(tensor parallelism supports Llama-style decoders)")
    dim = plan.head_dim
    keep_bias = rank == 0  # a row-split layer's bias is added once, not once per rank
    for layer in layers:
        attention, mlp = layer.self_attn, layer.mlp
        attention.q_proj = _rows(attention.q_proj, plan.q_heads[0] * dim, plan.q_heads[1] * dim)
        attention.k_proj = _rows(attention.k_proj, plan.kv_heads[0] * dim, plan.kv_heads[1] * dim)
        attention.v_proj = _rows(attention.v_proj, plan.kv_heads[0] * dim, plan.kv_heads[1] * dim)
        attention.o_proj = AllReduceSum(_columns(attention.o_proj, plan.q_heads[0] * dim, plan.q_heads[1] * dim,
                                                 keep_bias))
        mlp.gate_proj = _rows(mlp.gate_proj, *plan.mlp_rows)
        mlp.up_proj = _rows(mlp.up_proj, *plan.mlp_rows)
        mlp.down_proj = AllReduceSum(_columns(mlp.down_proj, *plan.mlp_rows, keep_bias))
    return {"rank": rank, "world": world, "layers": len(layers), "q_heads": list(plan.q_heads),
            "kv_heads": list(plan.kv_heads), "mlp_rows": list(plan.mlp_rows)}
