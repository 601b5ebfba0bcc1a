"""onnxruntime's own quantizer on a model, for the figures printed beside qcflow's (bench/quantize-real.ts).

Usage: ort_quantize.py METHOD INPUT OUTPUT, METHOD int8-dynamic (quantize_dynamic, int8 weights, as its
docs recommend for CPUs) or int4 (MatMulNBitsQuantizer, block 32, symmetric). Prints one JSON object:
{"seconds": s} or {"error": "..."} when the tool fails on the model.
"""
import json
import sys
import time
import traceback

method, src, dst = sys.argv[1:4]
t0 = time.perf_counter()
try:
    if method == "int8-dynamic":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(src, dst, weight_type=QuantType.QInt8)
    elif method == "int4":
        import onnx
        from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

        q = MatMulNBitsQuantizer(onnx.load(src), block_size=32, is_symmetric=True)
        q.process()
        q.model.save_model_to_file(dst, False)
    else:
        raise ValueError(f"unknown method {method}")
    print(json.dumps({"seconds": round(time.perf_counter() - t0, 3)}))
except Exception as e:  # the tool's own failure is a result here, reported by name
    print(json.dumps({"error": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:300], "where": traceback.format_exc().splitlines()[-3][:200]}))
