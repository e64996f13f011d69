package api

import "net/http"

// SLOSource is what the SLO endpoints read.
type SLOSource interface{}

func (s *Server) sloRoutes(mux *http.ServeMux) {}
