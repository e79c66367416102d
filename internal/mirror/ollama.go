package mirror

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"net/http"
	"path"
	"regexp"
	"strconv"
	"strings"
)

// manifestMediaType is the Docker v2 manifest type Ollama asks for.
const manifestMediaType = "application/vnd.docker.distribution.manifest.v2+json"

// ollamaManifests is where an Ollama models directory keeps manifests of
// the default registry.
const ollamaManifests = "ollama/manifests/registry.ollama.ai"

var tagRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$`)

// registryError answers with a Docker registry error body.
func registryError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"errors": []map[string]string{{"code": code, "message": msg}}})
}

// blobDigest parses "sha256:<64 hex>" into the hex part.
func blobDigest(d string) (string, bool) {
	h, ok := strings.CutPrefix(d, "sha256:")
	if !ok || len(h) != 64 {
		return "", false
	}
	if _, err := hex.DecodeString(h); err != nil || strings.ToLower(h) != h {
		return "", false
	}
	return h, true
}

func ollamaRepo(ns, model string) string { return "ollama:" + ns + "/" + model }

// registryBase serves GET /v2/: the registry API version check.
func (s *Server) registryBase(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	writeJSON(w, http.StatusOK, struct{}{})
}

// manifest serves HEAD|GET /v2/{ns}/{model}/manifests/{tag}.
func (s *Server) manifest(w http.ResponseWriter, r *http.Request) {
	ns, model, tag := r.PathValue("ns"), r.PathValue("model"), r.PathValue("tag")
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	if !validName(ns) || !validName(model) || !tagRE.MatchString(tag) {
		registryError(w, http.StatusNotFound, "MANIFEST_UNKNOWN", "manifest unknown")
		return
	}
	b, err := fs.ReadFile(s.root.FS(), path.Join(ollamaManifests, ns, model, tag))
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			s.log.Warn("mirror cannot read manifest", "model", ns+"/"+model+":"+tag, "err", err)
		}
		registryError(w, http.StatusNotFound, "MANIFEST_UNKNOWN", "manifest unknown: "+ns+"/"+model+":"+tag)
		return
	}
	w, finish, ok := s.faultsFor(w, r, ollamaRepo(ns, model), OnAPI, "", nil)
	if !ok {
		return
	}
	defer finish()
	sum := sha256.Sum256(b)
	h := w.Header()
	h.Set("Content-Type", manifestMediaType)
	h.Set("Docker-Content-Digest", "sha256:"+hex.EncodeToString(sum[:]))
	h.Set("ETag", `"sha256:`+hex.EncodeToString(sum[:])+`"`)
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	w.Write(b)
}

// registryBlob serves HEAD (size) and GET (307 to the blob host) of
// /v2/{ns}/{model}/blobs/sha256:{hex}. Any blob of the directory is served
// under any model name.
func (s *Server) registryBlob(w http.ResponseWriter, r *http.Request) {
	ns, model, digest := r.PathValue("ns"), r.PathValue("model"), r.PathValue("digest")
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	hexDigest, ok := blobDigest(digest)
	if !ok || !validName(ns) || !validName(model) {
		registryError(w, http.StatusBadRequest, "DIGEST_INVALID", "provided digest did not match uploaded content: "+digest)
		return
	}
	fi, err := fs.Stat(s.root.FS(), "ollama/blobs/sha256-"+hexDigest)
	if err != nil || !fi.Mode().IsRegular() {
		registryError(w, http.StatusNotFound, "BLOB_UNKNOWN", "blob unknown to registry: "+digest)
		return
	}
	w, finish, ok := s.faultsFor(w, r, ollamaRepo(ns, model), OnAPI, digest, nil)
	if !ok {
		return
	}
	defer finish()
	h := w.Header()
	h.Set("Docker-Content-Digest", digest)
	if r.Method == http.MethodHead {
		h.Set("Content-Type", "application/octet-stream")
		h.Set("Content-Length", strconv.FormatInt(fi.Size(), 10))
		h.Set("Accept-Ranges", "bytes")
		w.WriteHeader(http.StatusOK)
		return
	}
	h.Set("Location", s.otherHost(r)+"/__blob/"+ns+"/"+model+"/"+digest+"?"+s.sign("blob", ns+"/"+model, digest))
	w.WriteHeader(http.StatusTemporaryRedirect)
}

// blob serves the signed blob URL with Range support.
func (s *Server) blob(w http.ResponseWriter, r *http.Request) {
	ns, model, digest := r.PathValue("ns"), r.PathValue("model"), r.PathValue("digest")
	if err := s.verify(r, "blob", ns+"/"+model, digest); err != nil {
		writeJSON(w, http.StatusForbidden, map[string]string{"error": err.Error()})
		return
	}
	hexDigest, _ := blobDigest(digest) // signed, so valid
	file := "ollama/blobs/sha256-" + hexDigest
	fi, err := fs.Stat(s.root.FS(), file)
	if err != nil || !fi.Mode().IsRegular() {
		registryError(w, http.StatusNotFound, "BLOB_UNKNOWN", "blob unknown to registry: "+digest)
		return
	}
	countFile(w, file)
	w, finish, ok := s.faultsFor(w, r, ollamaRepo(ns, model), OnDownload, digest, nil)
	if !ok {
		return
	}
	defer finish()
	s.serveFile(w, r, file, fi.Size(), `"`+digest+`"`, "application/octet-stream")
}
