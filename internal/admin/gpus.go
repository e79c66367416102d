package admin

import (
	"net/http"

	v1 "citadel.dev/citadel/api/v1"
)

// NoGPUInventory is the answer of GET /api/v1/gpus on a server with no serving controller.
const NoGPUInventory = "this server runs no serving controller (citadel serve --engines=false), so it keeps no GPU inventory and places nothing on GPUs"

// gpus is GET /api/v1/gpus: the GPU inventory as the serving controller sees it.
func (s *Server) gpus(w http.ResponseWriter, r *http.Request) {
	if s.opts.GPUs == nil {
		writeError(w, http.StatusNotFound, v1.ReasonNotFound, NoGPUInventory, nil)
		return
	}
	l, err := s.opts.GPUs(r.Context())
	if err != nil {
		writeError(w, http.StatusInternalServerError, v1.ReasonInternal, "reading the GPU inventory: "+err.Error(), nil)
		return
	}
	if l.Items == nil {
		l.Items = []v1.GPU{}
	}
	writeJSON(w, http.StatusOK, l)
}
