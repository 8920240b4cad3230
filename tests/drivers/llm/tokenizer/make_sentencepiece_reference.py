#!/usr/bin/env python3
"""Writes gemma_sentencepiece_reference.json: Gemma 3's token ids for a list of texts, computed by
Google's SentencePiece library (an implementation independent of icam's and of llama.cpp's).

Usage: make_sentencepiece_reference.py MODEL.gguf TEXTS.json > gemma_sentencepiece_reference.json
Needs the Python packages sentencepiece and protobuf. TEXTS.json is a JSON array of strings.

The SentencePiece model is rebuilt from the GGUF vocabulary (pieces, scores and types, BPE,
byte fallback, identity normalization, no dummy prefix). Two kinds of texts are left out, where
llama.cpp's rules (which icam follows) differ from SentencePiece's: texts with two consecutive
spaces (SentencePiece matches user-defined pieces after turning spaces into U+2581, so it never
uses Gemma's space-run pieces; llama.cpp matches them in the raw text), and texts containing
"</s>" (user-defined in Gemma's vocabulary, so SentencePiece always matches it; llama.cpp treats
that text as a control token, matched only when parsing special tokens).
"""
import json
import struct
import sys

from sentencepiece import sentencepiece_model_pb2 as model_pb2
import sentencepiece


def read_metadata(path):
    data = open(path, "rb").read(64 << 20)
    pos = 0

    def take(fmt):
        nonlocal pos
        value = struct.unpack_from(fmt, data, pos)[0]
        pos += struct.calcsize(fmt)
        return value

    def string():
        nonlocal pos
        n = take("<Q")
        value = data[pos:pos + n].decode("utf-8")
        pos += n
        return value

    scalars = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
               10: "<Q", 11: "<q", 12: "<d"}

    def value(kind):
        if kind == 8:
            return string()
        if kind == 9:
            element = take("<I")
            return [value(element) for _ in range(take("<Q"))]
        return take(scalars[kind])

    assert data[:4] == b"GGUF"
    pos = 4
    take("<I")  # version
    take("<Q")  # tensor count
    metadata = {}
    for _ in range(take("<Q")):
        key = string()
        metadata[key] = value(take("<I"))
    return metadata


def main():
    metadata = read_metadata(sys.argv[1])
    texts = json.load(open(sys.argv[2], encoding="utf-8"))
    proto = model_pb2.ModelProto()
    for piece, score, kind in zip(metadata["tokenizer.ggml.tokens"],
                                  metadata["tokenizer.ggml.scores"],
                                  metadata["tokenizer.ggml.token_type"]):
        entry = proto.pieces.add()
        entry.piece, entry.score, entry.type = piece, score, kind
    spec = proto.trainer_spec
    spec.model_type = model_pb2.TrainerSpec.BPE
    spec.vocab_size = len(proto.pieces)
    spec.byte_fallback = True
    spec.unk_id = metadata["tokenizer.ggml.unknown_token_id"]
    spec.bos_id = metadata["tokenizer.ggml.bos_token_id"]
    spec.eos_id = metadata["tokenizer.ggml.eos_token_id"]
    spec.pad_id = metadata["tokenizer.ggml.padding_token_id"]
    proto.normalizer_spec.name = "identity"
    proto.normalizer_spec.add_dummy_prefix = False
    proto.normalizer_spec.remove_extra_whitespaces = False
    proto.normalizer_spec.escape_whitespaces = True
    processor = sentencepiece.SentencePieceProcessor(model_proto=proto.SerializeToString())
    cases = [{"text": t, "ids": processor.encode(t)} for t in texts
             if "  " not in t and "</s>" not in t]
    # One case per line, so that a diff shows which cases changed.
    sys.stdout.write("[\n" + ",\n".join(json.dumps(case) for case in cases) + "\n]\n")


if __name__ == "__main__":
    main()
