// Package mirror serves a directory as a Hugging Face Hub and as an Ollama
// registry, closely enough that the real clients (huggingface_hub,
// @huggingface/hub, hf_transfer, ollama pull) work against it. Air-gapped
// sites use it as their hub; every test of the puller uses it as its peer,
// with injected faults.
//
// # Directory layout
//
//	DIR/
//	  .mirror-cache.json                 hash cache (written by the server; safe to delete)
//	  hf/<org>/<name>/...files...        revision "main" of model repo org/name
//	  hf/<org>/<name>/.mirror.json       optional repo settings (never served)
//	  hf/<org>/<name>/.mirror-revs/v1/   a conventional place for other revisions' files
//	  ollama/manifests/registry.ollama.ai/<namespace>/<model>/<tag>
//	  ollama/blobs/sha256-<hex>          an Ollama models directory, as is
//
// .mirror.json (decoded strictly; unknown fields are errors):
//
//	{
//	  "private": false,          // private repos need a token: anonymous → 401 RepoNotFound
//	  "gated": "auto",           // "", "auto" or "manual": files need a token listed below
//	  "tokens": ["hf_…"],        // tokens that may read a private or gated repo
//	                             // (empty: every token given in Options.Tokens may)
//	  "revisions": {"v1.0": ".mirror-revs/v1.0"},   // revision → subdirectory of the repo
//	  "faults": [{"kind": "status", "status": 503, "count": 2}]   // see Fault
//	}
//
// Any file or directory whose name starts with ".mirror", and any ".git"
// directory, is invisible. A revision's subdirectory is excluded from
// "main". Symbolic links are followed only when they stay inside DIR.
//
// # Commits and ETags
//
// A revision's commit is the SHA-1 of its sorted (path, size, sha256) list:
// stable across restarts and equal for equal contents. A 40-hex revision in a
// request that equals a revision's commit resolves to that revision; "HEAD"
// is an alias of "main". Files of 1 MiB or more, or with a weight extension
// (.safetensors .bin .gguf .pt .pth .onnx .h5 .msgpack), are LFS files: their
// ETag is the SHA-256 of the content, and their git blob id that of their LFS
// pointer file. Other files' ETag is their git blob SHA-1. Hashes are computed
// lazily, streamed, cached in memory by (path, size, mtime) and persisted in
// the cache file, so a restart of a large mirror does not rehash it; Server.Hash
// precomputes them (citadel mirror hash).
//
// # Endpoints
//
// Hugging Face Hub (as huggingface_hub calls it, https://github.com/huggingface/huggingface_hub; the answers
// are tabled in docs/mirror.md):
//
//	GET  /api/models/{org}/{name}[/revision/{rev}][?blobs=true]
//	GET  /api/models/{org}/{name}/tree/{rev}[/{path}]?recursive=&cursor=   (Link: rel="next" pages)
//	POST /api/models/{org}/{name}/paths-info/{rev}                          (JSON or form "paths")
//	HEAD|GET /{org}/{name}/resolve/{rev}/{path}    small: 200 + ETag; LFS: 302 to the other host
//	GET  /__lfs/{org}/{name}/{commit}/{path}?expires=&signature=             signed, Range, no auth
//	GET  /api/whoami-v2
//
// Ollama registry (a Docker Registry v2 subset, as ollama pull calls it:
// https://github.com/ollama/ollama/blob/main/server/download.go):
//
//	GET  /v2/
//	HEAD|GET /v2/{namespace}/{model}/manifests/{tag}
//	HEAD /v2/{namespace}/{model}/blobs/sha256:{hex}    Content-Length
//	GET  /v2/{namespace}/{model}/blobs/sha256:{hex}    307 to the other host
//	GET  /__blob/{namespace}/{model}/sha256:{hex}?expires=&signature=        signed, Range
//
// Redirects go to "the other host name" of the same listener: 127.0.0.1 and
// localhost swap (::1 goes to localhost), so clients see a different host as
// they do with the real CDNs; Options.RedirectHost names one explicitly.
//
// # Faults
//
// Fault describes an injected failure (stall, throttle, status, ratelimit,
// corrupt, drop, wronglength), selected per repo, file glob and request
// count, deterministically. Faults come from .mirror.json and from
// Server.SetFaults; Server.Requests reports requests and body bytes per path
// and per served file.
//
// # Pull-through cache
//
// Cache (citadel mirror serve --cache) answers the same two protocols from
// an upstream Hub and Ollama registry: API calls are forwarded with the
// client's Authorization and kept for a TTL (for good when they name a
// commit); files and blobs are fetched once through internal/hub and
// internal/registry, verified (sha256, git blob sha1, size), resumed with
// Range after a failure, and served from the cache directory, also while the
// upstream is down.
package mirror
