package admin

import (
	"errors"
	"io"
	"net/http"

	v1 "citadel.dev/citadel/api/v1"
)

// NoGateway is the answer to an explain call on a server whose gateway is off.
const NoGateway = "no gateway runs in this server (it was started with --gateway-addr off): start citadel serve with a gateway address"

// explain routes a chat request without sending it (POST /api/v1/explain?api=openai|ollama).
func (s *Server) explain(w http.ResponseWriter, r *http.Request) {
	if s.opts.Explain == nil {
		writeError(w, http.StatusNotFound, v1.ReasonNotFound, NoGateway, nil)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes))
	if err != nil {
		writeError(w, http.StatusBadRequest, v1.ReasonBadRequest, "reading the request: "+err.Error(), nil)
		return
	}
	x, err := s.opts.Explain(body, r.URL.Query().Get("api"))
	if err != nil {
		status, reason := http.StatusBadRequest, v1.ReasonBadRequest
		var sc interface{ StatusCode() int }
		if errors.As(err, &sc) && sc.StatusCode() == http.StatusNotFound {
			status, reason = http.StatusNotFound, v1.ReasonNotFound
		}
		writeError(w, status, reason, err.Error(), nil)
		return
	}
	writeJSON(w, http.StatusOK, x)
}
