package httpapi

import "github.com/labstack/echo/v4"

// routesBatches registers the batch endpoints under /api.
func (s *Server) routesBatches(g *echo.Group) {}
