package httpapi

import "github.com/labstack/echo/v4"

// routesOpenAI registers the OpenAI-compatible endpoints under /v1.
func (s *Server) routesOpenAI(g *echo.Group) {}
