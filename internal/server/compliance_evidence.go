package server

func (s *Server) evidenceRoutes() []*route { return nil }
