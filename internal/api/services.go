package api

import "net/http"

// ServiceSource is what the service (golden signals) endpoints read.
type ServiceSource interface{}

func (s *Server) serviceRoutes(mux *http.ServeMux) {}
