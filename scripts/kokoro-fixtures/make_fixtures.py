#!/usr/bin/python3
"""Generate the tiny ONNX models pkg/kokoro's tests run through ONNX Runtime.

Run with Debian's python (python3-onnx 1.12 + numpy), not a pyenv python:

    /usr/bin/python3 scripts/kokoro-fixtures/make_fixtures.py [--out pkg/kokoro/testdata]
        [--config /work/shared/kokoro/config.json]

Each "echo" model has EXACTLY the input/output names, element types and ranks
of one public Kokoro export, but instead of speech its audio output encodes
what reached it, so a Go test can decode the token ids, the style vector and
the speed the engine passed in:

    audio = [ 0 x 240 | MAGIC | n/1024 | ids[0..n)/1024 | speed/2 | style[0..256)/8 | 0 x 240 ]

where n is the sequence length INCLUDING the two pad tokens, MAGIC = 79/128.
Every factor is a power of two, so the decoded values are exact; all values
stay inside [-1, 1] for ids < 1024, speed <= 2 and |style| < 8 (the real
packs peak near 3.2), so the encoding survives the engine's clipping, and the
240 zeros at both ends absorb the engine's join fades. Length: 739 + n.

Models written (all opset 17, IR 8, no stored weights; a few KB each):

  echo_v10.onnx        thewh1teagle model-files-v1.0: tokens int64 [1,N],
                       style float32 [1,256], speed float32 [1] -> audio [S]
  echo_community.onnx  onnx-community Kokoro-82M-v1.0-ONNX: input_ids, style,
                       speed float32 -> waveform [1,S]
  echo_v11.onnx        thewh1teagle model-files-v1.1: input_ids, style, speed
                       float32 -> waveform [S], duration int64 [N]; carries
                       the model config in metadata `kokoro_config`, with its
                       vocab ids shifted by +200 (so a test can tell the
                       model's vocab from the embedded one)
  echo_v11_int32.onnx  older v1.1-zh: as v1.1 but speed int32 [1], no metadata
  echo_batch.onnx      batch-capable re-export (the contract pkg/kokoro
                       defines for models with `input_lengths`):
                         inputs  input_ids int64 [B,N] (rows padded with 0),
                                 input_lengths int64 [B] (valid ids per row,
                                 pads included), style float32 [B,256],
                                 speed float32 [B]
                         outputs waveform float32 [B,S] (rows zero padded),
                                 output_lengths int64 [B] (valid samples/row)
                       Row b encodes only its first input_lengths[b] ids, so
                       a test proves the engine splits rows by
                       output_lengths, not by S.
  standin.onnx         compute stand-in with the v1.0 signature for the
                       throughput benchmark: about 55 GFLOP per second of
                       audio like Kokoro-82M (1,600 samples per token at
                       speed 1, 22 MatMul layers of 1024x1024 over 80 rows per
                       token). Its weights come from RandomNormal nodes at run
                       time, so the file stays tiny.

`duration` in the v1.1 fixtures is ids + 1 per token (a decodable stand-in
for frames per token).
"""

import argparse
import json
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8
PAD = 240
MAGIC = 79.0 / 128.0
STYLE = 256
ENC_FIXED = 2 * PAD + 3 + STYLE  # 739 samples besides the n ids


def const(name, value, dtype=np.float32):
    arr = np.asarray(value, dtype=dtype)
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(arr, name + "_v"))


def save(graph, path, metadata=None):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="kokoro-tts make_fixtures.py")
    model.ir_version = IR_VERSION
    if metadata:
        for k, v in metadata.items():
            entry = model.metadata_props.add()
            entry.key = k
            entry.value = v
    onnx.checker.check_model(model)
    with open(path, "wb") as f:
        f.write(model.SerializeToString())
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


def echo_nodes(ids_in, style_in, speed_in, speed_int32):
    """Nodes computing the 1-D encoding `enc` [739+N] from a [1,N] ids input."""
    n = []
    n.append(const("shape_flat", [-1], np.int64))
    n.append(helper.make_node("Cast", [ids_in], ["ids_f2"], to=TensorProto.FLOAT))
    n.append(helper.make_node("Reshape", ["ids_f2", "shape_flat"], ["ids_f"]))
    n.append(const("inv1024", [1.0 / 1024.0]))
    n.append(helper.make_node("Mul", ["ids_f", "inv1024"], ["ids_enc"]))
    # n = Shape(ids)[1]
    n.append(helper.make_node("Shape", [ids_in], ["ids_shape"]))
    n.append(const("one_i", [1], np.int64))
    n.append(helper.make_node("Gather", ["ids_shape", "one_i"], ["len_i"], axis=0))
    n.append(helper.make_node("Cast", ["len_i"], ["len_f"], to=TensorProto.FLOAT))
    n.append(helper.make_node("Mul", ["len_f", "inv1024"], ["len_enc"]))
    if speed_int32:
        n.append(helper.make_node("Cast", [speed_in], ["speed_f"], to=TensorProto.FLOAT))
        sp = "speed_f"
    else:
        sp = speed_in
    n.append(const("half", [0.5]))
    n.append(helper.make_node("Mul", [sp, "half"], ["speed_enc"]))
    n.append(helper.make_node("Reshape", [style_in, "shape_flat"], ["style_flat"]))
    n.append(const("eighth", [0.125]))
    n.append(helper.make_node("Mul", ["style_flat", "eighth"], ["style_enc"]))
    n.append(const("zeros", np.zeros(PAD)))
    n.append(const("magic", [MAGIC]))
    n.append(helper.make_node(
        "Concat", ["zeros", "magic", "len_enc", "ids_enc", "speed_enc", "style_enc", "zeros"], ["enc"], axis=0))
    return n


def single_inputs(ids_name, speed_int32):
    return [
        helper.make_tensor_value_info(ids_name, TensorProto.INT64, [1, "sequence_length"]),
        helper.make_tensor_value_info("style", TensorProto.FLOAT, [1, STYLE]),
        helper.make_tensor_value_info("speed", TensorProto.INT32 if speed_int32 else TensorProto.FLOAT, [1]),
    ]


def make_echo(path, ids_name, out_name, out_rank, speed_int32=False, duration=False, metadata=None):
    nodes = echo_nodes(ids_name, "style", "speed", speed_int32)
    if out_rank == 1:
        nodes.append(helper.make_node("Identity", ["enc"], [out_name]))
        out_shape = ["num_samples"]
    else:
        nodes.append(const("zero_axis", [0], np.int64))
        nodes.append(helper.make_node("Unsqueeze", ["enc", "zero_axis"], [out_name]))
        out_shape = [1, "num_samples"]
    outputs = [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, out_shape)]
    if duration:
        nodes.append(helper.make_node("Reshape", [ids_name, "shape_flat"], ["ids_flat"]))
        nodes.append(helper.make_node("Add", ["ids_flat", "one_i"], ["duration"]))
        outputs.append(helper.make_tensor_value_info("duration", TensorProto.INT64, ["sequence_length"]))
    graph = helper.make_graph(nodes, os.path.basename(path), single_inputs(ids_name, speed_int32), outputs)
    save(graph, path, metadata)


def make_batch(path):
    n = []
    # T = [Z | MAGIC | len/1024 | ids/1024 | speed/2 | style/8 | Z]  -> [B, M], M = 739 + N
    n.append(helper.make_node("Shape", ["input_ids"], ["ids_shape"]))
    n.append(const("zero_i", [0], np.int64))
    n.append(const("one_i", [1], np.int64))
    n.append(helper.make_node("Gather", ["ids_shape", "zero_i"], ["B"], axis=0))
    n.append(helper.make_node("Gather", ["ids_shape", "one_i"], ["N"], axis=0))
    n.append(const("inv1024", [1.0 / 1024.0]))
    n.append(helper.make_node("Cast", ["input_ids"], ["ids_f"], to=TensorProto.FLOAT))
    n.append(helper.make_node("Mul", ["ids_f", "inv1024"], ["ids_enc"]))
    n.append(const("col", [-1, 1], np.int64))
    n.append(helper.make_node("Cast", ["input_lengths"], ["len_f1"], to=TensorProto.FLOAT))
    n.append(helper.make_node("Reshape", ["len_f1", "col"], ["len_f"]))
    n.append(helper.make_node("Mul", ["len_f", "inv1024"], ["len_enc"]))
    n.append(const("half", [0.5]))
    n.append(helper.make_node("Reshape", ["speed", "col"], ["speed_col"]))
    n.append(helper.make_node("Mul", ["speed_col", "half"], ["speed_enc"]))
    n.append(const("eighth", [0.125]))
    n.append(helper.make_node("Mul", ["style", "eighth"], ["style_enc"]))
    n.append(const("pad_w", [PAD], np.int64))
    n.append(helper.make_node("Concat", ["B", "pad_w"], ["zshape"], axis=0))
    n.append(helper.make_node("ConstantOfShape", ["zshape"], ["Z"],
                              value=helper.make_tensor("z0", TensorProto.FLOAT, [1], [0.0])))
    n.append(helper.make_node("Concat", ["B", "one_i"], ["mshape"], axis=0))
    n.append(helper.make_node("ConstantOfShape", ["mshape"], ["MAG"],
                              value=helper.make_tensor("m0", TensorProto.FLOAT, [1], [MAGIC])))
    n.append(helper.make_node(
        "Concat", ["Z", "MAG", "len_enc", "ids_enc", "speed_enc", "style_enc", "Z"], ["T"], axis=1))
    # j = 0..M-1; src = j + (j >= 242+len) * (N - len); valid = j < 739 + len
    n.append(helper.make_node("Shape", ["T"], ["T_shape"]))
    n.append(helper.make_node("Gather", ["T_shape", "one_i"], ["M1"], axis=0))
    n.append(helper.make_node("Squeeze", ["M1", "zero_i"], ["M"]))
    n.append(const("zero_s", 0, np.int64))
    n.append(const("one_s", 1, np.int64))
    n.append(helper.make_node("Range", ["zero_s", "M", "one_s"], ["j1"]))
    n.append(const("row", [1, -1], np.int64))
    n.append(helper.make_node("Reshape", ["j1", "row"], ["j"]))                       # [1, M]
    n.append(helper.make_node("Reshape", ["input_lengths", "col"], ["len_c"]))      # [B, 1]
    n.append(const("c242", [PAD + 2], np.int64))
    n.append(const("c739", [ENC_FIXED], np.int64))
    n.append(helper.make_node("Add", ["len_c", "c242"], ["gap_start"]))
    n.append(helper.make_node("Sub", ["N", "len_c"], ["gap"]))                       # [B, 1]
    n.append(helper.make_node("GreaterOrEqual", ["j", "gap_start"], ["after"]))     # [B, M]
    n.append(helper.make_node("Cast", ["after"], ["after_i"], to=TensorProto.INT64))
    n.append(helper.make_node("Mul", ["after_i", "gap"], ["shift"]))
    n.append(helper.make_node("Add", ["j", "shift"], ["src0"]))
    n.append(helper.make_node("Sub", ["M1", "one_i"], ["Mlast"]))
    n.append(helper.make_node("Min", ["src0", "Mlast"], ["src"]))
    n.append(helper.make_node("Add", ["len_c", "c739"], ["out_len_c"]))
    n.append(helper.make_node("Less", ["j", "out_len_c"], ["valid"]))
    n.append(helper.make_node("GatherElements", ["T", "src"], ["gathered"], axis=1))
    n.append(const("zero_f", [0.0]))
    n.append(helper.make_node("Where", ["valid", "gathered", "zero_f"], ["waveform"]))
    n.append(const("flat", [-1], np.int64))
    n.append(helper.make_node("Reshape", ["out_len_c", "flat"], ["output_lengths"]))
    inputs = [
        helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence_length"]),
        helper.make_tensor_value_info("input_lengths", TensorProto.INT64, ["batch"]),
        helper.make_tensor_value_info("style", TensorProto.FLOAT, ["batch", STYLE]),
        helper.make_tensor_value_info("speed", TensorProto.FLOAT, ["batch"]),
    ]
    outputs = [
        helper.make_tensor_value_info("waveform", TensorProto.FLOAT, ["batch", "num_samples"]),
        helper.make_tensor_value_info("output_lengths", TensorProto.INT64, ["batch"]),
    ]
    save(helper.make_graph(n, "echo_batch", inputs, outputs), path)


def make_standin(path, dim=1024, rows_per_token=80, layers=22, samples_per_row=20):
    """A MatMul stack costing about 55 GFLOP per second of 24 kHz audio."""
    n = []
    rnd = lambda name, shape, seed: helper.make_node(
        "RandomNormal", [], [name], shape=shape, seed=float(seed), mean=0.0,
        scale=float(1.0 / np.sqrt(shape[0])), dtype=TensorProto.FLOAT)
    n.append(rnd("W", [dim, dim], 1))
    n.append(rnd("W_in", [rows_per_token, dim], 2))
    n.append(rnd("W_style", [STYLE, dim], 3))
    n.append(rnd("W_out", [dim, samples_per_row], 4))
    # x[t, r, :] = tanh(id_t/178 * W_in[r] + style @ W_style)
    n.append(helper.make_node("Cast", ["tokens"], ["ids_f"], to=TensorProto.FLOAT))
    n.append(const("inv178", [1.0 / 178.0]))
    n.append(helper.make_node("Mul", ["ids_f", "inv178"], ["ids_s"]))
    n.append(const("shape3", [-1, 1, 1], np.int64))
    n.append(helper.make_node("Reshape", ["ids_s", "shape3"], ["ids3"]))            # [N,1,1]
    n.append(helper.make_node("Mul", ["ids3", "W_in"], ["x0"]))                      # [N,R,D]
    n.append(helper.make_node("MatMul", ["style", "W_style"], ["st"]))               # [1,D]
    n.append(helper.make_node("Mul", ["st", "speed"], ["st_sp"]))
    n.append(helper.make_node("Add", ["x0", "st_sp"], ["x1"]))
    n.append(const("shape2", [-1, dim], np.int64))
    n.append(helper.make_node("Reshape", ["x1", "shape2"], ["x2"]))
    prev = "x2"
    for i in range(layers):
        n.append(helper.make_node("MatMul", [prev, "W"], [f"h{i}"]))
        n.append(helper.make_node("Tanh", [f"h{i}"], [f"a{i}"]))
        prev = f"a{i}"
    n.append(helper.make_node("MatMul", [prev, "W_out"], ["y"]))
    n.append(const("flat", [-1], np.int64))
    n.append(const("gain", [0.25]))
    n.append(helper.make_node("Mul", ["y", "gain"], ["y2"]))
    n.append(helper.make_node("Reshape", ["y2", "flat"], ["audio"]))
    graph = helper.make_graph(n, "standin", single_inputs("tokens", False),
                              [helper.make_tensor_value_info("audio", TensorProto.FLOAT, ["num_samples"])])
    save(graph, path)
    flop_per_token = 2 * rows_per_token * dim * dim * layers
    samples_per_token = rows_per_token * samples_per_row
    print(f"standin: {flop_per_token / 1e9:.2f} GFLOP and {samples_per_token} samples per token = "
          f"{flop_per_token / (samples_per_token / 24000) / 1e9:.1f} GFLOP per second of audio")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.normpath(os.path.join(here, "..", "..", "pkg", "kokoro", "testdata")))
    ap.add_argument("--config", default=os.path.normpath(os.path.join(here, "..", "..", "..", "shared", "kokoro", "config.json")),
                    help="Kokoro v1.0 config.json whose vocab (ids shifted by 200) goes into echo_v11.onnx")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    with open(args.config, encoding="utf-8") as f:
        config = json.load(f)
    shifted = dict(config)
    shifted["vocab"] = {k: v + 200 for k, v in config["vocab"].items()}
    shifted["n_token"] = config["n_token"] + 200
    out = lambda name: os.path.join(args.out, name)
    make_echo(out("echo_v10.onnx"), "tokens", "audio", 1)
    make_echo(out("echo_community.onnx"), "input_ids", "waveform", 2)
    make_echo(out("echo_v11.onnx"), "input_ids", "waveform", 1, duration=True,
              metadata={"kokoro_config": json.dumps(shifted, ensure_ascii=False)})
    make_echo(out("echo_v11_int32.onnx"), "input_ids", "waveform", 2, speed_int32=True, duration=True)
    make_batch(out("echo_batch.onnx"))
    make_standin(out("standin.onnx"))


if __name__ == "__main__":
    main()
