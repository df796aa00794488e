"""The deployment wing: models in and out of crnn_ocr's checkpoint format.

- ``crnn_ocr.deploy.export``: a checkpoint -> ONNX (fp32 / int8), TorchScript or a slim
  inference checkpoint (``tools/export.py``);
- ``crnn_ocr.deploy.convert``: a third-party deep-text-recognition-benchmark / EasyOCR checkpoint
  -> a crnn_ocr checkpoint (``tools/convert_checkpoint.py``).

Reading an export needs none of this: the onnxruntime backend is part of the core
(``crnn_ocr.onnx_backend``), since ``crnn_ocr.recognizer.load_recognizer`` opens ``.onnx`` files.
The wing imports the core (checkpoint, model, front-ends, the ONNX names); no core module imports it.
"""
