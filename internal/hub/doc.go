// Package hub is a client for the Hugging Face Hub download protocol: model info, the recursive file tree,
// per-file metadata (HEAD on the resolve URL), and ranged GETs of file contents. It follows
// huggingface_hub's conventions (https://github.com/huggingface/huggingface_hub, file_download.py; the
// endpoints and answers are tabled in docs/mirror.md, "Endpoints") so that it works against the real Hub,
// an HF-compatible mirror, and the test hubs built with httptest.
//
// # Auth
//
// The token is sent as "Authorization: Bearer …" only to the endpoint's origin (scheme, host and port).
// Redirects are followed by the client itself, hop by hop, so a redirect to a CDN or any other host never
// carries the token, as huggingface_hub and hf_transfer do.
//
// # Errors
//
// Failures the Hub reports are typed ([*RepoNotFoundError], [*GatedRepoError], [*RevisionNotFoundError],
// [*EntryNotFoundError], [*UnauthorizedError], [*RateLimitedError], [*HTTPError]); answers that cannot be
// trusted are [*HostileFileError] and [*MetadataError]. [Retryable] and [RetryAfter] classify any error
// returned by the client for retry decisions. Error messages never contain the token or the query string
// of a signed URL.
//
// # Concurrency
//
// A [Client] is immutable after [New] and safe for concurrent use.
package hub
