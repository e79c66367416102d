// Package modelinfo learns what a model is from its files on disk: format, architecture, parameter
// count and size, context length, dtype and quantisation, and whether it takes images or produces
// embeddings. Its output follows OME's model agent (pkg/modelagent/config_parser.go,
// pkg/hfutil/modelconfig), so that Citadel fills the same BaseModel fields the same way:
// parameter sizes such as "7B" or "8.29B" and capability names such as IMAGE_TEXT_TO_TEXT.
//
// The parsers (ReadSafetensorsHeader, ReadGGUF, ParseConfig) read outside input — files pulled from
// a hub, or whatever sits in a directory — and are written for hostile input: every length and
// count is checked against a fixed limit and the bytes actually left before anything is allocated
// or skipped, integer arithmetic is overflow-checked, and problems are returned as *FormatError
// with the byte offset, never as a panic. All functions are pure apart from reading the files they
// are given; there is no global mutable state.
//
// Where this package deliberately differs from OME:
//
//   - Quantization is quant_method as written (lower-cased), not only "fp8"/"int4".
//   - The embedding heuristic is more conservative (see isEmbedding): classification and reranker
//     heads are never embedding models, and neither are Mistral chat models.
//   - Parameter counts come from validated headers only; a header that fails validation is an
//     error, not a silently smaller count.
//   - FormatParameterSize trims trailing zeros ("7.1B", not "7.10B") and carries 999.999M to "1B".
package modelinfo
