package server

func (s *Server) reportRoutes() []*route { return nil }
