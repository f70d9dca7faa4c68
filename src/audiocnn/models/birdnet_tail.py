"""BirdNET V2.4's last layers as a torch module with BirdNET's own weights: the part a recipe may fine-tune.

Why: a frozen BirdNET gives every head the same 1,024 numbers per window; fine-tuning its last
MBConv block(s) lets ESC-50 reshape them (issue 31, "partial fine-tuning"). Training all of
BirdNET on a CPU is out of reach, and its TFLite graph has no gradients, but what follows a
late tensor is small: from the output of block 4-3 (a 3 × 8 × 192 map per 3 s window) to the
pooled embedding it is one MBConv block with squeeze-and-excitation, a batch norm with ReLU and
a 3 × 3 convolution to 1,024 channels, 2.5 M weights. The frontend caches the tap's activations
(`features.birdnet`, `tap:`), and this module computes the rest, trainable.

The module is built by reading the operators between the tap and the embedding from the graph
itself (`features.birdnet_graph.graph`) and doing each in torch, with the graph's constants as
parameters: no hand-copied architecture to drift from the file. The few operators that tail
uses are supported (convolution, depthwise convolution, logistic, multiply, add, mean, and the
squeeze-and-excitation reshape); anything else is a ConfigError naming it. On the same
activations its embedding matches LiteRT's (tests/test_birdnet_head.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from audiocnn.errors import ConfigError
from audiocnn.features import birdnet_graph

#: TFLite's enums, as the schema numbers them.
_SAME, _RELU = 0, 1
_SKIPPED = {"SHAPE", "STRIDED_SLICE", "PACK"}  # they only compute the reshape's target, known from the output


class BirdNetTail(nn.Module):
    """(windows, 3, 8, 192) activations at a tap (NHWC, as the graph holds them) → (windows, 1024) embeddings.

    Args:
        tap: a `birdnet_graph.TAPS` name: the tensor the cached activations are.
    """

    #: A window's columns in the tap's activations (8 per 3 s window).
    columns = 8

    def __init__(self, tap: str) -> None:
        super().__init__()
        model = birdnet_graph.graph()
        subgraph = model.subgraphs[0]
        start, end = birdnet_graph.TAPS[tap], birdnet_graph.EMBEDDING_TENSOR
        names = [t.name.decode() for t in subgraph.tensors]
        producer = {op.outputs[0]: k for k, op in enumerate(subgraph.operators)}
        first, last = producer[names.index(start)] + 1, producer[names.index(end)]
        codes = {v: k for k, v in vars(_schema().BuiltinOperator).items() if not k.startswith("_")}
        self.input_tensor, self.output_tensor = names.index(start), names.index(end)
        self.steps: list[tuple[str, list[int], int, dict[str, Any]]] = []
        self.weights = nn.ParameterDict()
        for k, op in enumerate(subgraph.operators[first : last + 1], start=first):
            kind = codes[model.operatorCodes[op.opcodeIndex].builtinCode]
            if kind in _SKIPPED:
                continue
            if kind not in _OPS:
                raise ConfigError(f"BirdNET's tail from {tap}: operator {kind} is not supported here")
            inputs = []
            for j, index in enumerate(op.inputs):
                tensor = subgraph.tensors[index]
                data = model.buffers[tensor.buffer].data
                if data is not None and len(data) and kind not in ("MEAN", "RESHAPE"):
                    constant = np.frombuffer(np.asarray(data, np.uint8).tobytes(), np.float32).reshape(tensor.shape)
                    self.weights[f"op{k}_{j}"] = nn.Parameter(torch.from_numpy(constant.copy()))
                    inputs.append(-1)  # a parameter, not a tensor: `weights[f"op{k}_{j}"]` at run time
                else:
                    inputs.append(int(index))
            options = vars(op.builtinOptions) if op.builtinOptions is not None else {}
            if kind == "MEAN":
                axes = model.buffers[subgraph.tensors[op.inputs[1]].buffer].data
                options = {**options, "axes": np.frombuffer(np.asarray(axes, np.uint8).tobytes(), np.int32).tolist()}
            if kind == "RESHAPE":
                options = {**options, "shape": [int(n) for n in subgraph.tensors[op.outputs[0]].shape[1:]]}
            self.steps.append((kind, [inputs[0]] if kind in ("MEAN", "RESHAPE") else inputs, int(op.outputs[0]),
                               {**options, "op": k}))

    def forward(self, activations: Tensor) -> Tensor:
        """The 1,024-d embeddings of the tap's activations (windows, 3, 8, 192)."""
        values: dict[int, Tensor] = {self.input_tensor: activations.float()}
        for kind, inputs, output, options in self.steps:
            args = [self.weights[f"op{options['op']}_{j}"] if index < 0 else values[index]
                    for j, index in enumerate(inputs)]
            values[output] = _OPS[kind](args, options)
        return values[self.output_tensor]


def _schema() -> Any:
    from ai_edge_litert import schema_py_generated as schema

    return schema


def _activation(x: Tensor, options: dict[str, Any]) -> Tensor:
    fused = options.get("fusedActivationFunction", 0)
    if fused not in (0, _RELU):
        raise ConfigError(f"BirdNET's tail: fused activation {fused} is not supported here")
    return F.relu(x) if fused == _RELU else x


def _conv(args: list[Tensor], options: dict[str, Any], depthwise: bool = False) -> Tensor:
    """TFLite's (depthwise) convolution of an NHWC tensor, stride 1 (all the tail has)."""
    x, weight, bias = args
    if (options["strideH"], options["strideW"]) != (1, 1):
        raise ConfigError("BirdNET's tail: a strided convolution is not supported here")
    # torch wants NCHW, weights OIHW: TFLite's are OHWI, depthwise 1HWO
    kernel = weight.permute(3, 0, 1, 2) if depthwise else weight.permute(0, 3, 1, 2)
    x = x.permute(0, 3, 1, 2)
    if options["padding"] == _SAME:
        kh, kw = kernel.shape[2:]
        x = F.pad(x, ((kw - 1) // 2, kw // 2, (kh - 1) // 2, kh // 2))
    y = F.conv2d(x, kernel, bias, groups=x.shape[1] if depthwise else 1)
    return _activation(y.permute(0, 2, 3, 1), options)


_OPS = {
    "CONV_2D": _conv,
    "DEPTHWISE_CONV_2D": lambda args, options: _conv(args, options, depthwise=True),
    "LOGISTIC": lambda args, options: torch.sigmoid(args[0]),
    "MUL": lambda args, options: _activation(args[0] * args[1], options),
    "ADD": lambda args, options: _activation(args[0] + args[1], options),
    "MEAN": lambda args, options: args[0].mean(dim=options["axes"], keepdim=bool(options.get("keepDims"))),
    "RESHAPE": lambda args, options: args[0].reshape(len(args[0]), *options["shape"]),
}
