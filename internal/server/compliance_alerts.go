package server

func (s *Server) alertRoutes() []*route { return nil }
