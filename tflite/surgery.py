"""Flatbuffer surgery on `.tflite` models: one model per op, for per-op timing and GPU probes."""

from __future__ import annotations

from ghostnet_keras.tflite import inventory


def single_op_models(data: bytes) -> list[tuple[inventory.OpInfo, bytes]]:
    """Splits a `.tflite` model into one-op models (same tensors, constants and options).

    Runtime inputs of each op become the one-op model's inputs; constants keep their buffers.
    """
    import flatbuffers

    s = inventory._schema()
    full = s.ModelT.InitFromPackedBuf(bytearray(data), 0)
    graph = full.subgraphs[0]
    info = inventory.read_model(data)
    models = []
    for op_info, op in zip(info.ops, graph.operators, strict=True):
        tensor_ids = [i for i in (*op.inputs, *op.outputs) if i >= 0]
        remap = {old: new for new, old in enumerate(dict.fromkeys(tensor_ids))}
        new = s.ModelT()
        new.version = full.version
        new.description = "single op"
        new.operatorCodes = [full.operatorCodes[op.opcodeIndex]]
        new.buffers = [s.BufferT()]
        sub = s.SubGraphT()
        sub.tensors = []
        constants = set()
        for old, new_index in remap.items():
            tensor = graph.tensors[old]
            copy = s.TensorT()
            copy.shape = tensor.shape
            copy.shapeSignature = tensor.shapeSignature
            copy.type = tensor.type
            copy.name = tensor.name
            copy.quantization = tensor.quantization
            buffer = full.buffers[tensor.buffer] if tensor.buffer > 0 else None
            if buffer is not None and buffer.data is not None and len(buffer.data):
                new.buffers.append(buffer)
                constants.add(new_index)
            else:
                new.buffers.append(s.BufferT())
            copy.buffer = len(new.buffers) - 1
            sub.tensors.append(copy)
        sub.inputs = [remap[i] for i in op.inputs if i >= 0 and remap[i] not in constants]
        sub.outputs = [remap[i] for i in op.outputs if i >= 0]
        copy_op = s.OperatorT()
        copy_op.opcodeIndex = 0
        copy_op.inputs = [remap[i] if i >= 0 else -1 for i in op.inputs]
        copy_op.outputs = [remap[i] for i in op.outputs]
        copy_op.builtinOptionsType = op.builtinOptionsType
        copy_op.builtinOptions = op.builtinOptions
        sub.operators = [copy_op]
        new.subgraphs = [sub]
        builder = flatbuffers.Builder(1024)
        builder.Finish(new.Pack(builder), file_identifier=b"TFL3")
        models.append((op_info, bytes(builder.Output())))
    return models
