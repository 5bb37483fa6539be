package server

func (s *Server) scoreRoutes() []*route { return nil }
