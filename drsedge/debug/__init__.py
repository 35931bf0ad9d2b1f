"""Inspection tools in the manner of Polygraphy's ``debug``/``inspect``: where drift starts (:mod:`.localize`),
which nodes overflow FP16 (:mod:`.fp16_range`), and engine/ONNX-Runtime agreement (:mod:`.compare`)."""
