"""onnxruntime's own quantizer on a model, for the figures printed beside qcflow's (bench/quantize-real.ts).

Usage: ort_quantize.py METHOD INPUT OUTPUT [CALIBRATION.jsonl], METHOD int8-dynamic (quantize_dynamic, int8
weights, as its docs recommend for CPUs), int4 (MatMulNBitsQuantizer, block 32, symmetric) or int4-gptq (the
same with its GPTQ, GPTQWeightOnlyQuantConfig at its defaults: 1% damping, no act-order, fed the samples of
CALIBRATION.jsonl, qcflow's golden format), int8-static (quantize_static: QDQ, per-channel int8 weights,
uint8 activations, min-max on CALIBRATION.jsonl, as its docs recommend for CPUs; int8-static-percentile: its
percentile calibration at its default 99.999%) or fp16 (onnxconverter-common's convert_float_to_float16 with
keep_io_types, the converter onnxruntime's docs send fp16 users to). Prints one JSON object: {"seconds": s} or {"error": "..."} when
the tool fails on the model.
"""
import json
import sys
import time
import traceback

method, src, dst = sys.argv[1:4]


def calibration_reader(path):
    import numpy as np
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self):
            with open(path) as f:
                self.samples = [json.loads(line) for line in f if line.strip()]
            self.at = 0

        def get_next(self):
            if self.at >= len(self.samples):
                return None
            s = self.samples[self.at]
            self.at += 1
            types = {"int64": np.int64, "int32": np.int32}
            return {k: np.array(v["data"], dtype=types.get(v.get("type"), np.float32)).reshape(v["dims"]) for k, v in s.items() if k != "label"}

        def rewind(self):
            self.at = 0

    return Reader()


t0 = time.perf_counter()
try:
    if method == "int8-dynamic":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(src, dst, weight_type=QuantType.QInt8)
    elif method in ("int4", "int4-gptq"):
        import onnx
        from onnxruntime.quantization.matmul_nbits_quantizer import GPTQWeightOnlyQuantConfig, MatMulNBitsQuantizer

        algo = GPTQWeightOnlyQuantConfig(calibration_data_reader=calibration_reader(sys.argv[4])) if method == "int4-gptq" else None
        q = MatMulNBitsQuantizer(onnx.load(src), block_size=32, is_symmetric=True, algo_config=algo)
        q.process()
        q.model.save_model_to_file(dst, False)
    elif method in ("int8-static", "int8-static-percentile"):
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

        calibrate = CalibrationMethod.Percentile if method == "int8-static-percentile" else CalibrationMethod.MinMax
        quantize_static(src, dst, calibration_reader(sys.argv[4]), quant_format=QuantFormat.QDQ, per_channel=True, weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8, calibrate_method=calibrate)
    elif method == "fp16":
        import onnx
        from onnxconverter_common import float16

        onnx.save(float16.convert_float_to_float16(onnx.load(src), keep_io_types=True), dst)
    else:
        raise ValueError(f"unknown method {method}")
    print(json.dumps({"seconds": round(time.perf_counter() - t0, 3)}))
except Exception as e:  # the tool's own failure is a result here, reported by name
    print(json.dumps({"error": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:300], "where": traceback.format_exc().splitlines()[-3][:200]}))
