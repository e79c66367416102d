package admin

import (
	"encoding/json"
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

// fit is POST /api/v1/fit: would the InferenceService in the body be placed now beside the
// running services? Nothing is applied and nothing moves.
func (s *Server) fit(w http.ResponseWriter, r *http.Request) {
	if s.opts.Fit == nil {
		writeError(w, http.StatusNotFound, v1.ReasonNotFound, NoGPUInventory, nil)
		return
	}
	var isvc v1.InferenceService
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes)).Decode(&isvc); err != nil {
		writeError(w, http.StatusBadRequest, v1.ReasonBadRequest, "decoding the InferenceService: "+err.Error(), nil)
		return
	}
	if isvc.Spec.Model == nil || isvc.Spec.Model.Name == "" {
		writeError(w, http.StatusBadRequest, v1.ReasonBadRequest, "spec.model.name is required: the model to place", nil)
		return
	}
	res, err := s.opts.Fit(r.Context(), &isvc)
	if err != nil {
		writeError(w, http.StatusInternalServerError, v1.ReasonInternal, "checking the fit: "+err.Error(), nil)
		return
	}
	writeJSON(w, http.StatusOK, res)
}
